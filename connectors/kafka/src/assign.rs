//! Which partitions a spout task reads: Storm's `RoundRobinManualPartitioner`.

use crate::config::Topics;

/// A topic and partition.
pub(crate) type Tp = (String, i32);

/// The partitions of `all` (those of every topic `topics` matches) that task `index` of
/// `count` reads: sorted by topic and partition, task `i` takes partitions `i, i + count,
/// i + 2 * count ...`. Computed over every configured task, live or not, so the assignment
/// only changes when the partitions or the parallelism do; tasks beyond the number of
/// partitions read nothing.
pub(crate) fn partitions_for_task(topics: &Topics, all: &[Tp], index: u32, count: u32) -> Vec<Tp> {
    let mut matching: Vec<Tp> = all
        .iter()
        .filter(|(t, _)| topics.matches(t))
        .cloned()
        .collect();
    matching.sort();
    matching.dedup();
    let count = count.max(1) as usize;
    matching
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % count == index as usize)
        .map(|(_, tp)| tp)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tps(list: &[(&str, i32)]) -> Vec<Tp> {
        list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
    }

    #[test]
    fn round_robin_over_sorted_partitions_covers_each_once() {
        let all = tps(&[("b", 1), ("a", 1), ("b", 0), ("a", 0), ("other", 0)]);
        let topics = Topics::names(["a", "b"]);
        let t0 = partitions_for_task(&topics, &all, 0, 2);
        let t1 = partitions_for_task(&topics, &all, 1, 2);
        assert_eq!(t0, tps(&[("a", 0), ("b", 0)]));
        assert_eq!(t1, tps(&[("a", 1), ("b", 1)]));
    }

    #[test]
    fn more_tasks_than_partitions_leaves_some_idle() {
        let all = tps(&[("a", 0), ("a", 1)]);
        let topics = Topics::names(["a"]);
        let got: Vec<usize> = (0..3)
            .map(|i| partitions_for_task(&topics, &all, i, 3).len())
            .collect();
        assert_eq!(got, [1, 1, 0]);
    }

    #[test]
    fn patterns_pick_matching_topics() {
        let all = tps(&[("sent.a", 0), ("sent.b", 0), ("counts", 0)]);
        let topics = Topics::pattern("sent\\..*").expect("regex");
        assert_eq!(
            partitions_for_task(&topics, &all, 0, 1),
            tps(&[("sent.a", 0), ("sent.b", 0)])
        );
    }
}
