//! What `TopologyBuilder::build` refuses, each problem naming its culprit, all reported at once.

use topology_api::prelude::*;
use topology_api::validate::*;
struct S;
#[async_trait]
impl Spout for S {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["word"]);
        d.declare_direct_stream("direct", ["word"]);
    }
    async fn next_tuple(&mut self, _: &mut SpoutOutputCollector) -> ComponentResult {
        Ok(())
    }
}
struct B;
#[async_trait]
impl BasicBolt for B {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["word", "count"]);
    }
    fn execute(&mut self, _: &Tuple, _: &mut BasicOutputCollector<'_>) -> ComponentResult {
        Ok(())
    }
}

fn errors(b: TopologyBuilder) -> (Vec<TopologyError>, String) {
    let e = b.build().expect_err("topology should be refused");
    let text = e.to_string();
    (e.0, text)
}

fn one_error(b: TopologyBuilder) -> (TopologyError, String) {
    let (mut errs, text) = errors(b);
    assert_eq!(errs.len(), 1, "{text}");
    (errs.remove(0), text)
}

#[test]
fn valid_topology_builds() {
    let mut b = TopologyBuilder::new("t");
    b.set_spout("s", || S, 1);
    b.set_basic_bolt("b", || B, 2)
        .fields_grouping("s", ["word"]);
    b.set_basic_bolt("d", || B, 2)
        .direct_grouping(("s", "direct"));
    assert!(b.build().is_ok());
}

#[test]
fn unknown_component() {
    let mut b = TopologyBuilder::new("t");
    b.set_spout("s", || S, 1);
    b.set_basic_bolt("b", || B, 1).shuffle_grouping("nope");
    let (e, text) = one_error(b);
    assert!(
        matches!(e, TopologyError::UnknownComponent { .. }),
        "{text}"
    );
    assert!(
        text.contains("\"b\"") && text.contains("\"nope\""),
        "{text}"
    );
}

#[test]
fn unknown_stream() {
    let mut b = TopologyBuilder::new("t");
    b.set_spout("s", || S, 1);
    b.set_basic_bolt("b", || B, 1)
        .shuffle_grouping(("s", "errors"));
    let (e, text) = one_error(b);
    assert!(matches!(e, TopologyError::UnknownStream { .. }), "{text}");
    assert!(
        text.contains("\"errors\"") && text.contains("\"default\""),
        "{text}"
    );
}

#[test]
fn fields_grouping_on_undeclared_field() {
    let mut b = TopologyBuilder::new("t");
    b.set_spout("s", || S, 1);
    b.set_basic_bolt("b", || B, 1)
        .fields_grouping("s", ["wrod"]);
    let (e, text) = one_error(b);
    assert!(
        matches!(e, TopologyError::UnknownGroupingField { .. }),
        "{text}"
    );
    assert!(
        text.contains("\"wrod\"") && text.contains("[\"word\"]"),
        "{text}"
    );
}

#[test]
fn duplicate_component_id() {
    let mut b = TopologyBuilder::new("t");
    b.set_spout("s", || S, 1);
    b.set_basic_bolt("s", || B, 1).shuffle_grouping("s");
    let (errs, text) = errors(b);
    assert!(
        errs.contains(&TopologyError::DuplicateComponent { id: "s".into() }),
        "{text}"
    );
    assert_eq!(text.matches("used twice").count(), 1, "{text}");
}

#[test]
fn zero_parallelism() {
    let mut b = TopologyBuilder::new("t");
    b.set_spout("s", || S, 1);
    b.set_basic_bolt("b", || B, 0).shuffle_grouping("s");
    let (e, text) = one_error(b);
    assert!(matches!(e, TopologyError::ZeroParallelism { .. }), "{text}");
    assert!(text.contains("\"b\" has parallelism 0"), "{text}");
}

#[test]
fn direct_grouping_on_non_direct_stream() {
    let mut b = TopologyBuilder::new("t");
    b.set_spout("s", || S, 1);
    b.set_basic_bolt("b", || B, 1).direct_grouping("s");
    let (e, text) = one_error(b);
    assert!(
        matches!(e, TopologyError::DirectGroupingOnNonDirectStream { .. }),
        "{text}"
    );
    assert!(
        text.contains("\"b\"") && text.contains("\"default\""),
        "{text}"
    );
}

#[test]
fn bolt_without_inputs() {
    let mut b = TopologyBuilder::new("t");
    b.set_spout("s", || S, 1);
    b.set_basic_bolt("lonely", || B, 1);
    let (e, text) = one_error(b);
    assert_eq!(
        e,
        TopologyError::BoltWithoutInputs {
            bolt: "lonely".into()
        },
        "{text}"
    );
}

#[test]
fn cycle_is_named_by_its_path() {
    let mut b = TopologyBuilder::new("t");
    b.set_spout("s", || S, 1);
    b.set_basic_bolt("a", || B, 1)
        .shuffle_grouping("s")
        .shuffle_grouping("c");
    b.set_basic_bolt("b", || B, 1).shuffle_grouping("a");
    b.set_basic_bolt("c", || B, 1).shuffle_grouping("b");
    let (e, text) = one_error(b);
    let TopologyError::Cycle { path } = e else {
        panic!("{text}")
    };
    assert_eq!(path.len(), 4, "{text}");
    assert_eq!(path.first(), path.last());
    let mut on_cycle: Vec<_> = path[..3].to_vec();
    on_cycle.sort();
    assert_eq!(on_cycle, ["a", "b", "c"], "{text}");
    assert!(text.contains(" -> "), "{text}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut b = TopologyBuilder::new("t");
    b.set_spout("s", || S, 1);
    b.set_basic_bolt("x", || B, 0)
        .fields_grouping("s", ["nope"]);
    b.set_basic_bolt("y", || B, 1);
    let (errs, text) = errors(b);
    assert_eq!(errs.len(), 3, "{text}");
    assert!(text.starts_with("invalid topology (3 problems)"), "{text}");
}

#[test]
fn too_many_tasks() {
    let mut b = TopologyBuilder::new("t");
    b.set_spout("s", || S, 1).set_num_tasks(u32::MAX);
    b.set_basic_bolt("b", || B, 1).shuffle_grouping("s");
    let (e, text) = one_error(b);
    assert!(matches!(e, TopologyError::TooManyTasks { .. }), "{text}");
    assert!(text.contains("4294967296 tasks"), "{text}");
}

#[test]
fn no_spout_and_bad_config() {
    let mut b = TopologyBuilder::new("t");
    b.config()
        .set(topology_api::config::TOPOLOGY_MESSAGE_TIMEOUT_SECS, "soon");
    let (errs, text) = errors(b);
    assert!(matches!(errs[0], TopologyError::NoSpout { .. }), "{text}");
    assert!(text.contains("topology.message.timeout.secs"), "{text}");
}

#[test]
fn misspelt_config_keys_are_refused_with_the_nearest_known_one() {
    let mut b = TopologyBuilder::new("t");
    b.config().set("topology.max.spout.pendng", 100);
    b.config().set("rate", 5);
    b.set_spout("s", || S, 1);
    b.set_basic_bolt("b", || B, 1)
        .shuffle_grouping("s")
        .add_config("topology.tick.tuple.freq", 1);
    let (errs, text) = errors(b);
    assert_eq!(errs.len(), 3, "{text}");
    assert!(
        text.contains(
            "\"topology.max.spout.pendng\"; did you mean \"topology.max.spout.pending\"?"
        ),
        "{text}"
    );
    assert!(text.contains("config of b: unknown config key \"topology.tick.tuple.freq\"; did you mean \"topology.tick.tuple.freq.secs\"?"), "{text}");
    assert!(text.contains("\"rate\" has no prefix"), "{text}");
}
