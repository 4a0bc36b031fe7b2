//! Components shared by the example topologies: a random sentence spout, a sentence splitter and
//! a word counter, over the ten benchmark sentences in `data/sentences.txt`.

use std::collections::HashMap;

pub mod reliable;
use topology_api::prelude::*;

/// The ten sentences every word count (and our comparisons with other engines) draws from.
pub fn sentences() -> Vec<&'static str> {
    include_str!("../data/sentences.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Emits sentences drawn uniformly at random, forever. With `reliable`, each gets a message id
/// (so its tuple tree is tracked); failed ones are not replayed.
#[derive(Debug)]
pub struct RandomSentenceSpout {
    sentences: Vec<&'static str>,
    rng: fastrand::Rng,
    reliable: bool,
    next_id: u64,
}

impl RandomSentenceSpout {
    /// A spout; `reliable` turns message ids on.
    pub fn new(reliable: bool) -> Self {
        RandomSentenceSpout {
            sentences: sentences(),
            rng: fastrand::Rng::new(),
            reliable,
            next_id: 0,
        }
    }
}

#[async_trait]
impl Spout for RandomSentenceSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["sentence"]);
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        let s = self.sentences[self.rng.usize(..self.sentences.len())];
        self.next_id += 1;
        c.emit(values![s], self.reliable.then_some(self.next_id))?;
        Ok(())
    }
}

/// Splits the "sentence" field into one tuple per word.
#[derive(Debug, Default)]
pub struct SplitSentence;

#[async_trait]
impl BasicBolt for SplitSentence {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["word"]);
    }
    fn execute(&mut self, t: &Tuple, c: &mut BasicOutputCollector<'_>) -> ComponentResult {
        for w in t.str("sentence")?.split_whitespace() {
            c.emit(values![w])?;
        }
        Ok(())
    }
}

/// Counts words (use with a fields grouping on "word") and emits each new count.
#[derive(Debug, Default)]
pub struct WordCount {
    counts: HashMap<String, i64>,
}

#[async_trait]
impl BasicBolt for WordCount {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["word", "count"]);
    }
    fn execute(&mut self, t: &Tuple, c: &mut BasicOutputCollector<'_>) -> ComponentResult {
        let word = t.str("word")?;
        let n = match self.counts.get_mut(word) {
            Some(n) => n,
            None => self.counts.entry(word.to_string()).or_default(),
        };
        *n += 1;
        c.emit(values![word, *n])?;
        Ok(())
    }
}
