"""A reliable spout in plain Python: emits N tuples whose message ids are JSON objects and
whose one value is an object with a nested list; checks that every ack brings back exactly
the id it emitted, and when all are acked emits one tuple on stream "done"."""
import json
import os
import sys


def read_msg():
    lines = []
    while True:
        line = sys.stdin.readline()
        if not line:
            sys.exit(0)
        line = line.rstrip("\n")
        if line == "end":
            return json.loads("\n".join(lines))
        lines.append(line)


def send(msg):
    sys.stdout.write(json.dumps(msg) + "\nend\n")
    sys.stdout.flush()


hello = read_msg()
open(os.path.join(hello["pidDir"], str(os.getpid())), "w").close()
send({"pid": os.getpid()})
n = int(hello["conf"].get("test.count", 50))
pending = {}
acked = 0
nxt = 0
done_sent = False
while True:
    cmd = read_msg()
    c = cmd["command"]
    if c == "next":
        if nxt < n:
            mid = {"seq": nxt, "tag": ["x", nxt % 3]}
            pending[nxt] = mid
            send({"command": "emit", "id": mid, "tuple": [{"seq": nxt, "words": ["a", "b"][: 1 + nxt % 2]}]})
            ids = read_msg()  # need_task_ids defaults to true
            if not isinstance(ids, list):
                send({"command": "error", "msg": "expected task ids, got %r" % (ids,)})
            nxt += 1
        elif acked == n and not done_sent:
            send({"command": "emit", "stream": "done", "tuple": [acked], "need_task_ids": False})
            done_sent = True
    elif c == "ack":
        mid = cmd["id"]
        if pending.pop(mid.get("seq") if isinstance(mid, dict) else None, None) != mid:
            send({"command": "error", "msg": "ack of an id never emitted: %r" % (mid,)})
        else:
            acked += 1
    elif c == "fail":
        send({"command": "error", "msg": "unexpected fail of %r" % (cmd["id"],)})
    send({"command": "sync"})
