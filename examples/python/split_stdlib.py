"""A split bolt in plain Python (standard library only) speaking Storm's multilang protocol.

Reads sentences, emits each word anchored to its sentence, acks the sentence, answers
heartbeats with sync. MULTILANG_FAULT=garbage|hang|exit makes the first process of a task
misbehave once on a sentence containing "poison" (tests use it; a marker file in the working
directory keeps the restarted process well-behaved).
"""
import json
import os
import sys
import time


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


def fault_once():
    mode = os.environ.get("MULTILANG_FAULT")
    if not mode or os.path.exists("faulted"):
        return
    open("faulted", "w").close()
    print("about to misbehave: " + mode, file=sys.stderr, flush=True)
    if mode == "garbage":
        sys.stdout.write("this is not json\nend\n")
        sys.stdout.flush()
        time.sleep(60)
    elif mode == "hang":
        time.sleep(600)
    elif mode == "exit":
        sys.exit(3)


hello = read_msg()
open(os.path.join(hello["pidDir"], str(os.getpid())), "w").close()
send({"pid": os.getpid()})
send({"command": "log", "msg": "split ready on task %d" % hello["context"]["taskid"], "level": 2})
while True:
    msg = read_msg()
    if isinstance(msg, list):
        continue  # the task ids of an earlier emit
    if msg["stream"] == "__heartbeat" and msg["task"] == -1:
        send({"command": "sync"})
        continue
    sentence = msg["tuple"][-1]
    if "poison" in sentence:
        fault_once()
    for word in sentence.split():
        send({"command": "emit", "anchors": [msg["id"]], "tuple": [word], "need_task_ids": False})
    send({"command": "ack", "id": msg["id"]})
