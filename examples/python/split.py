"""The split bolt of the python_word_count example, written with pystorm (pip install pystorm):
one word per tuple, anchored to the sentence and acked by pystorm's auto-ack."""
from pystorm import Bolt


class SplitBolt(Bolt):
    def process(self, tup):
        for word in tup.values[-1].split():
            self.emit([word])


if __name__ == "__main__":
    SplitBolt().run()
