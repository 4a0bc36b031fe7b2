//! Storm's multilang messages as JSON: what Tempest writes to a subprocess (the handshake,
//! tuples, spout commands, task id lists) and what it reads back (commands), with Storm's
//! framing: every message is JSON followed by a line `end`.

use serde_json::{json, Map, Value as Json};
use topology_api::spec::GroupingSpec;
use topology_api::{Config, TopologyContext, Tuple, Value};

/// The line that ends every message, both ways.
pub(crate) const END: &str = "end";
/// The stream of heartbeat tuples, and the task they come from.
pub(crate) const HEARTBEAT_STREAM: &str = "__heartbeat";
const SYSTEM_TASK_ID: i64 = -1;

/// Frames one message: its JSON, then `\nend\n` (as Storm's `JsonSerializer` writes it).
pub(crate) fn frame(msg: &Json) -> bytes::Bytes {
    let mut out = serde_json::to_vec(msg).expect("a serde_json::Value always serializes");
    out.extend_from_slice(b"\nend\n");
    out.into()
}

/// The handshake: `pidDir`, `conf` and `context`, as Storm's `ShellProcess` sends it.
pub(crate) fn handshake(ctx: &TopologyContext, pid_dir: &str) -> Json {
    json!({
        "pidDir": pid_dir,
        "conf": config_json(ctx.config(), ctx.topology_name()),
        "context": context_json(ctx),
    })
}

fn config_json(config: &Config, topology: &str) -> Json {
    let mut conf: Map<String, Json> = config.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    conf.entry("topology.name")
        .or_insert_with(|| Json::from(topology));
    Json::Object(conf)
}

/// Storm's JSON form of a grouping (`TopologyContext.groupingToJSONableMap`): its type in
/// Thrift's upper case, plus the fields of a fields grouping. Global is Storm's fields
/// grouping on no fields; partial key and custom groupings are Storm's custom ones.
fn grouping_json(g: &GroupingSpec) -> Json {
    match g {
        GroupingSpec::Shuffle => json!({"type": "SHUFFLE"}),
        GroupingSpec::Fields { fields } => json!({"type": "FIELDS", "fields": fields}),
        GroupingSpec::Global => json!({"type": "FIELDS", "fields": []}),
        GroupingSpec::All => json!({"type": "ALL"}),
        GroupingSpec::None => json!({"type": "NONE"}),
        GroupingSpec::Direct => json!({"type": "DIRECT"}),
        GroupingSpec::LocalOrShuffle => json!({"type": "LOCAL_OR_SHUFFLE"}),
        GroupingSpec::PartialKey { .. } | GroupingSpec::Custom { .. } => {
            json!({"type": "CUSTOM_OBJECT"})
        }
    }
}

/// The topology context as Storm 0.10+ sends it to shell components.
fn context_json(ctx: &TopologyContext) -> Json {
    let spec = ctx.spec();
    let me = ctx.component_id();
    let mut task_component = Map::new();
    let mut components: Vec<&str> = spec.components.iter().map(|c| c.id.as_str()).collect();
    components.push("__acker");
    for c in components {
        for t in ctx.tasks_of(c) {
            task_component.insert(t.to_string(), Json::from(c));
        }
    }
    let mut stream_target_grouping = Map::new();
    let mut stream_fields = Map::new();
    let mut streams = Vec::new();
    if let Some(mine) = spec.component(me) {
        for (stream, s) in &mine.streams {
            streams.push(Json::from(stream.as_str()));
            stream_fields.insert(stream.clone(), json!(s.fields));
            let targets: Map<String, Json> = spec
                .subscribers(me, stream)
                .map(|(c, g)| (c.id.clone(), grouping_json(g)))
                .collect();
            stream_target_grouping.insert(stream.clone(), Json::Object(targets));
        }
    }
    let mut source_stream_grouping = Map::new();
    let mut source_stream_fields = Map::new();
    if let Some(mine) = spec.component(me) {
        for input in &mine.inputs {
            let g = source_stream_grouping
                .entry(input.component.clone())
                .or_insert_with(|| Json::Object(Map::new()));
            g[&input.stream] = grouping_json(&input.grouping);
            let fields = spec
                .component(&input.component)
                .and_then(|c| c.streams.get(&input.stream))
                .map(|s| json!(s.fields))
                .unwrap_or_else(|| json!([]));
            let f = source_stream_fields
                .entry(input.component.clone())
                .or_insert_with(|| Json::Object(Map::new()));
            f[&input.stream] = fields;
        }
    }
    json!({
        "task->component": task_component,
        "taskid": ctx.task_id(),
        "componentid": me,
        "stream->target->grouping": stream_target_grouping,
        "streams": streams,
        "stream->outputfields": stream_fields,
        "source->stream->grouping": source_stream_grouping,
        "source->stream->fields": source_stream_fields,
    })
}

/// A tuple for a shell bolt: `{id, comp, stream, task, tuple}`.
pub(crate) fn bolt_tuple(id: &str, input: &Tuple) -> Result<Json, topology_api::JsonValueError> {
    let values = input
        .values()
        .iter()
        .map(Value::to_json)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({
        "id": id,
        "comp": input.source_component(),
        "stream": input.source_stream(),
        "task": input.source_task(),
        "tuple": values,
    }))
}

/// A heartbeat tuple: stream `__heartbeat`, task -1, no values (`comp` is null, as Storm's).
pub(crate) fn heartbeat_tuple(id: &str) -> Json {
    json!({"id": id, "comp": null, "stream": HEARTBEAT_STREAM, "task": SYSTEM_TASK_ID, "tuple": []})
}

/// A spout command (`next`, `ack`, `fail`, `activate`, `deactivate`) with its id (Storm
/// sends `""` for those without one).
pub(crate) fn spout_command(command: &str, id: &Json) -> Json {
    json!({"command": command, "id": id})
}

/// A command from a subprocess, parsed as Storm's `JsonSerializer.readShellMsg` does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ShellMsg {
    pub command: String,
    pub id: Option<Json>,
    pub msg: Option<String>,
    pub stream: String,
    /// The direct task of an emit (`None`: not direct).
    pub task: Option<u32>,
    pub need_task_ids: bool,
    pub tuple: Vec<Json>,
    pub anchors: Vec<String>,
    pub level: Option<i64>,
    pub metric_name: Option<String>,
    pub metric_params: Option<Json>,
}

/// Why a message from a subprocess was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum MsgError {
    #[error("not JSON ({0})")]
    NotJson(String),
    #[error("not a JSON object with a string \"command\"")]
    NoCommand,
    #[error("field {field:?} is {got}, expected {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        got: String,
    },
}

fn wrong(field: &'static str, expected: &'static str, got: &Json) -> MsgError {
    MsgError::WrongType {
        field,
        expected,
        got: got.to_string(),
    }
}

impl ShellMsg {
    /// Parses one message's text (the lines before `end`, joined by newlines).
    pub(crate) fn parse(text: &str) -> Result<ShellMsg, MsgError> {
        let json: Json =
            serde_json::from_str(text).map_err(|e| MsgError::NotJson(e.to_string()))?;
        let Json::Object(mut o) = json else {
            return Err(MsgError::NoCommand);
        };
        let Some(Json::String(command)) = o.remove("command") else {
            return Err(MsgError::NoCommand);
        };
        let str_field = |o: &mut Map<String, Json>, f: &'static str| match o.remove(f) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong(f, "a string", &other)),
        };
        let msg = str_field(&mut o, "msg")?;
        let stream = str_field(&mut o, "stream")?.unwrap_or_else(|| "default".to_string());
        let metric_name = str_field(&mut o, "name")?;
        let task = match o.remove("task") {
            None | Some(Json::Null) => None,
            Some(t) => match t.as_u64() {
                Some(0) => None,
                Some(n) if n <= u32::MAX as u64 => Some(n as u32),
                _ => return Err(wrong("task", "a task id", &t)),
            },
        };
        let need_task_ids = match o.remove("need_task_ids") {
            None | Some(Json::Null) => true,
            Some(Json::Bool(b)) => b,
            Some(other) => return Err(wrong("need_task_ids", "a boolean", &other)),
        };
        let tuple = match o.remove("tuple") {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Array(a)) => a,
            Some(other) => return Err(wrong("tuple", "a list", &other)),
        };
        let anchors = match o.remove("anchors") {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::String(s)) => vec![s],
            Some(Json::Array(a)) => a
                .into_iter()
                .map(|v| match v {
                    Json::String(s) => Ok(s),
                    other => Err(wrong("anchors", "a list of tuple ids (strings)", &other)),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(wrong("anchors", "a list of tuple ids", &other)),
        };
        let level = match o.remove("level") {
            None | Some(Json::Null) => None,
            Some(l) => Some(l.as_i64().ok_or_else(|| wrong("level", "an integer", &l))?),
        };
        Ok(ShellMsg {
            command,
            id: o.remove("id").filter(|v| !v.is_null()),
            msg,
            stream,
            task,
            need_task_ids,
            tuple,
            anchors,
            level,
            metric_name,
            metric_params: o.remove("params"),
        })
    }

    /// The values of an emit as tuple values.
    pub(crate) fn values(&self) -> Result<topology_api::Values, topology_api::JsonValueError> {
        self.tuple.iter().map(Value::from_json).collect()
    }
}

/// Writes a `log` command into the worker's log at its level (Storm's levels: 0 trace,
/// 1 debug, 2 info, 3 warn, 4 error; info when absent).
pub(crate) fn log_message(component: &str, task: u32, pid: u32, msg: &ShellMsg) {
    let text = msg.msg.as_deref().unwrap_or("");
    match msg.level.unwrap_or(2) {
        i64::MIN..=0 => tracing::trace!(component, task, pid, "{text}"),
        1 => tracing::debug!(component, task, pid, "{text}"),
        2 => tracing::info!(component, task, pid, "{text}"),
        3 => tracing::warn!(component, task, pid, "{text}"),
        _ => tracing::error!(component, task, pid, "{text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_end_with_an_end_line() {
        let f = frame(&json!({"command": "next", "id": ""}));
        assert_eq!(&f[..], b"{\"command\":\"next\",\"id\":\"\"}\nend\n");
        let f = frame(&json!([3, 4]));
        assert_eq!(&f[..], b"[3,4]\nend\n");
    }

    #[test]
    fn parses_like_storms_json_serializer() {
        let m =
            ShellMsg::parse(r#"{"command":"emit","anchors":"7","tuple":["a",{"k":[1]}]}"#).unwrap();
        assert_eq!(m.stream, "default");
        assert_eq!(m.anchors, vec!["7"]);
        assert!(m.need_task_ids, "need_task_ids defaults to true");
        assert_eq!(m.task, None);
        let v = m.values().unwrap();
        assert_eq!(v[1].get("k"), Some(&Value::from(vec![Value::from(1)])));
        let m = ShellMsg::parse(
            r#"{"command":"emit","task":9,"need_task_ids":false,"stream":"s","id":{"a":1}}"#,
        )
        .unwrap();
        assert_eq!((m.task, m.need_task_ids), (Some(9), false));
        assert_eq!(m.id, Some(json!({"a": 1})));
    }

    #[test]
    fn bad_messages_say_what_is_wrong() {
        assert!(matches!(
            ShellMsg::parse("hello"),
            Err(MsgError::NotJson(_))
        ));
        assert_eq!(ShellMsg::parse("[1]"), Err(MsgError::NoCommand));
        let e = ShellMsg::parse(r#"{"command":"emit","tuple":5}"#).unwrap_err();
        assert_eq!(e.to_string(), "field \"tuple\" is 5, expected a list");
    }
}
