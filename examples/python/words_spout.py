"""A reliable spout written with pystorm: emits `test.count` sentences (a conf key) with string
message ids, replays what fails, and once every id is acked emits the number of acks it saw
on stream "done"."""
import time

from pystorm import Spout


class WordsSpout(Spout):
    def initialize(self, storm_conf, context):
        self.total = int(storm_conf.get("test.count", 100))
        self.next_id = 0
        self.pending = {}
        self.replay = []
        self.acked = set()
        self.done = False

    def next_tuple(self):
        if self.replay:
            tid = self.replay.pop()
        elif self.next_id < self.total:
            tid = "s-%d" % self.next_id
            self.next_id += 1
        else:
            if len(self.acked) == self.total and not self.done:
                self.emit([len(self.acked)], stream="done")
                self.done = True
            time.sleep(0.001)
            return
        sentence = "pystorm says %s" % tid
        self.pending[tid] = sentence
        self.emit([sentence], tup_id=tid)

    def ack(self, tup_id):
        if tup_id in self.pending:
            del self.pending[tup_id]
            self.acked.add(tup_id)
        else:
            self.logger.error("ack of an id never emitted: %r", tup_id)

    def fail(self, tup_id):
        self.replay.append(tup_id)


if __name__ == "__main__":
    WordsSpout().run()
