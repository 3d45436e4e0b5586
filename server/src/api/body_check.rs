//! Names the fields of a JSON body that does not fit its operation's type.
//!
//! poem-openapi stops at the first problem and reports it by type, not by field
//! (`Expected input type "string", found null. (occurred while parsing "SendAll")`), which a
//! caller cannot act on. When it refuses a body, the body is checked again here against the
//! same schema the OpenAPI document publishes, and every problem is named by its path
//! (`event: required`, `roles: expected a list of strings…`, `data.items[2]: …`).

use std::sync::LazyLock;

use poem::http::Method;
use poem_openapi::OpenApi;
use poem_openapi::registry::Registry;
use serde_json::{Map, Value};

/// The request-body schemas of every operation of the server (host and addon APIs).
pub static SERVER_BODIES: LazyLock<BodySchemas> =
    LazyLock::new(BodySchemas::of::<crate::app::Apis>);

/// At most this many problems are listed in one message.
const MAX_PROBLEMS: usize = 5;

enum Segment {
    Literal(String),
    Param(String),
}

struct Operation {
    method: Method,
    segments: Vec<Segment>,
    /// The JSON request body's schema, for operations that take one.
    schema: Option<Value>,
}

/// The JSON request-body schema and path parameters of each operation, by method and path.
pub struct BodySchemas {
    operations: Vec<Operation>,
    definitions: Map<String, Value>,
}

impl BodySchemas {
    /// Reads the schemas from the API types (no instance needed).
    pub fn of<T: OpenApi>() -> BodySchemas {
        let mut registry = Registry::new();
        T::register(&mut registry);
        let definitions = registry
            .schemas
            .iter()
            .map(|(name, s)| (name.clone(), serde_json::to_value(s).unwrap_or_default()))
            .collect();
        let mut operations = Vec::new();
        for api in T::meta() {
            for path in api.paths {
                for op in path.operations {
                    let segments = path
                        .path
                        .trim_matches('/')
                        .split('/')
                        .map(
                            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                                Some(name) => Segment::Param(name.to_string()),
                                None => Segment::Literal(s.to_string()),
                            },
                        )
                        .collect();
                    let schema = op.request.as_ref().and_then(|r| {
                        r.content
                            .iter()
                            .find(|m| m.content_type.starts_with("application/json"))
                            .map(|m| serde_json::to_value(&m.schema).unwrap_or_default())
                    });
                    operations.push(Operation {
                        method: op.method.clone(),
                        segments,
                        schema,
                    });
                }
            }
        }
        BodySchemas {
            operations,
            definitions,
        }
    }

    fn operation(&self, method: &Method, path: &str) -> Option<&Operation> {
        let path = path.trim_matches('/');
        let count = path.split('/').count();
        self.operations.iter().find(|op| {
            op.method == method
                && op.segments.len() == count
                && op
                    .segments
                    .iter()
                    .zip(path.split('/'))
                    .all(|(s, p)| match s {
                        Segment::Literal(l) => l == p,
                        Segment::Param(_) => true,
                    })
        })
    }

    /// The body schema of the operation at `method` `path`, if it takes a JSON body.
    pub fn find(&self, method: &Method, path: &str) -> Option<&Value> {
        self.operation(method, path)?.schema.as_ref()
    }

    /// The names of the operation's path parameters, in order (`["id"]` for `/api/users/{id}`).
    pub fn path_params(&self, method: &Method, path: &str) -> Vec<&str> {
        self.operation(method, path)
            .map(|op| {
                op.segments
                    .iter()
                    .filter_map(|s| match s {
                        Segment::Param(name) => Some(name.as_str()),
                        Segment::Literal(_) => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What is wrong with `body` for `schema`, one entry per field (empty if it fits).
    pub fn problems(&self, schema: &Value, body: &[u8]) -> Vec<String> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return vec![format!("body: required ({})", self.expected(schema))];
        }
        let value: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return vec![format!("body: not valid JSON ({e})")],
        };
        let mut out = Vec::new();
        self.check(schema, &value, "", None, &mut out);
        out.truncate(MAX_PROBLEMS);
        out
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        let mut s = schema;
        // A field with its own description is wrapped: `{"allOf": [{"$ref": …}], …}`.
        for _ in 0..8 {
            if let Some(r) = s.get("$ref").and_then(Value::as_str) {
                match r
                    .strip_prefix("#/components/schemas/")
                    .and_then(|n| self.definitions.get(n))
                {
                    Some(d) => s = d,
                    None => return s,
                }
            } else if let Some([only]) = s.get("allOf").and_then(Value::as_array).map(Vec::as_slice)
            {
                if s.get("type").is_some() {
                    return s;
                }
                s = only;
            } else {
                return s;
            }
        }
        s
    }

    /// "a string", "a list of strings", "an object".
    fn expected(&self, schema: &Value) -> String {
        let s = self.resolve(schema);
        let ty = s.get("type").and_then(Value::as_str).unwrap_or_default();
        let format = s.get("format").and_then(Value::as_str).unwrap_or_default();
        if let Some(items) = s.get("enum").and_then(Value::as_array) {
            let names: Vec<String> = items.iter().map(Value::to_string).collect();
            return format!("one of {}", names.join(", "));
        }
        match ty {
            "string" => "a string".into(),
            "integer" if format.starts_with("uint") => "a non-negative integer".into(),
            "integer" => "an integer".into(),
            "number" => "a number".into(),
            "boolean" => "true or false".into(),
            "array" => match s.get("items") {
                Some(items) => format!("a list of {}", plural(&self.expected(items))),
                None => "a list".into(),
            },
            "object" => "an object".into(),
            _ => "a value".into(),
        }
    }

    /// `hint` is the example the enclosing object's schema gives for this field.
    fn check(
        &self,
        schema: &Value,
        value: &Value,
        path: &str,
        hint: Option<&Value>,
        out: &mut Vec<String>,
    ) {
        let s = self.resolve(schema);
        let name = if path.is_empty() { "body" } else { path };
        if value.is_null() {
            if !s.get("nullable").and_then(Value::as_bool).unwrap_or(false) && has_type(s) {
                out.push(format!("{name}: required"));
            }
            return;
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(options) = s.get(key).and_then(Value::as_array) {
                let fits = options.iter().any(|o| {
                    let mut probe = Vec::new();
                    self.check(o, value, path, hint, &mut probe);
                    probe.is_empty()
                });
                if !fits {
                    let names: Vec<String> = options.iter().map(|o| self.expected(o)).collect();
                    out.push(format!("{name}: expected {}", names.join(" or ")));
                }
                return;
            }
        }
        if let Some(parts) = s.get("allOf").and_then(Value::as_array) {
            for p in parts {
                self.check(p, value, path, hint, out);
            }
        }
        let ty = s.get("type").and_then(Value::as_str).unwrap_or_default();
        let fits = match ty {
            // poem-openapi reads numbers and booleans into strings as their text.
            "string" => value.is_string() || value.is_number() || value.is_boolean(),
            "integer" => {
                let uint = s
                    .get("format")
                    .and_then(Value::as_str)
                    .is_some_and(|f| f.starts_with("uint"));
                value.as_u64().is_some() || (!uint && value.as_i64().is_some())
            }
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => true,
        };
        if !fits {
            out.push(format!(
                "{name}: expected {}{}, got {}",
                self.expected(s),
                example(s, hint),
                describe(value)
            ));
            return;
        }
        if let Some(items) = s.get("enum").and_then(Value::as_array) {
            if !items.contains(value) {
                out.push(format!(
                    "{name}: expected {}, got {value}",
                    self.expected(s)
                ));
            }
        }
        check_bounds(s, value, name, out);
        match value {
            Value::Array(list) => {
                if let Some(items) = s.get("items") {
                    for (i, v) in list.iter().enumerate() {
                        self.check(items, v, &format!("{name}[{i}]"), None, out);
                    }
                }
            }
            Value::Object(obj) if ty == "object" => self.check_object(s, obj, path, out),
            _ => {}
        }
    }

    fn check_object(&self, s: &Value, obj: &Map<String, Value>, path: &str, out: &mut Vec<String>) {
        let field = |key: &str| {
            if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            }
        };
        let properties = s.get("properties").and_then(Value::as_object);
        let required: Vec<&str> = s
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let unknown: Vec<&String> = match properties {
            Some(props) if s.get("additionalProperties").is_none() => {
                obj.keys().filter(|k| !props.contains_key(*k)).collect()
            }
            _ => Vec::new(),
        };
        for key in &required {
            if obj.get(*key).is_none_or(Value::is_null) {
                // `role` for `roles`: say what was sent instead.
                let hint = match unknown.as_slice() {
                    [] => String::new(),
                    [one] => format!(" (the body has an unknown field `{one}`)"),
                    many => {
                        let names: Vec<String> = many.iter().map(|k| format!("`{k}`")).collect();
                        format!(" (the body has unknown fields {})", names.join(", "))
                    }
                };
                out.push(format!("{}: required{hint}", field(key)));
            }
        }
        if let Some(props) = properties {
            for (key, v) in obj {
                if let Some(prop) = props.get(key) {
                    // A required null was reported above; an optional one means "absent".
                    if v.is_null() {
                        continue;
                    }
                    let hint = s.get("example").and_then(|e| e.get(key));
                    self.check(prop, v, &field(key), hint, out);
                }
            }
        }
        if let Some(extra) = s.get("additionalProperties") {
            if extra.is_object() {
                for (key, v) in obj {
                    if properties.is_none_or(|p| !p.contains_key(key)) {
                        self.check(extra, v, &field(key), None, out);
                    }
                }
            }
        }
    }
}

fn has_type(s: &Value) -> bool {
    s.get("type").is_some()
        || s.get("oneOf").is_some()
        || s.get("anyOf").is_some()
        || s.get("allOf").is_some()
}

fn check_bounds(s: &Value, value: &Value, name: &str, out: &mut Vec<String>) {
    let num = |k: &str| s.get(k).and_then(Value::as_f64);
    match value {
        Value::String(text) => {
            let n = text.chars().count() as f64;
            if let Some(max) = num("maxLength").filter(|m| n > *m) {
                out.push(format!("{name}: at most {max} characters, got {n}"));
            }
            if let Some(min) = num("minLength").filter(|m| n < *m) {
                out.push(format!("{name}: at least {min} characters, got {n}"));
            }
        }
        Value::Array(list) => {
            let n = list.len() as f64;
            if let Some(max) = num("maxItems").filter(|m| n > *m) {
                out.push(format!("{name}: at most {max} entries, got {n}"));
            }
            if let Some(min) = num("minItems").filter(|m| n < *m) {
                out.push(format!("{name}: at least {min} entries, got {n}"));
            }
        }
        Value::Number(x) => {
            let x = x.as_f64().unwrap_or_default();
            if let Some(max) = num("maximum").filter(|m| x > *m) {
                out.push(format!("{name}: at most {max}, got {x}"));
            }
            if let Some(min) = num("minimum").filter(|m| x < *m) {
                out.push(format!("{name}: at least {min}, got {x}"));
            }
        }
        _ => {}
    }
}

/// ` (e.g. ["operator"])` for lists and objects, whose shape the type name does not show.
fn example(s: &Value, hint: Option<&Value>) -> String {
    let ty = s.get("type").and_then(Value::as_str).unwrap_or_default();
    match s.get("example").or(hint) {
        Some(e) if ty == "array" || ty == "object" => format!(" (e.g. {e})"),
        _ => String::new(),
    }
}

/// "a string" → "strings", "an integer" → "integers".
fn plural(expected: &str) -> String {
    match expected {
        "true or false" => "booleans".into(),
        e if e.starts_with("one of ") => format!("values ({e})"),
        e => {
            let bare = e
                .strip_prefix("an ")
                .or_else(|| e.strip_prefix("a "))
                .unwrap_or(e);
            match bare.strip_prefix("list of ") {
                Some(inner) => format!("lists of {inner}"),
                None => format!("{bare}s"),
            }
        }
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.chars().count() <= 32 => format!("{v}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// Turns poem-openapi's reason for a parameter (`Type "integer(int64)" expects an input
/// value.`, `failed to parse "integer(uint64)": invalid digit found in string`) into what the
/// caller must send.
pub fn describe_param_failure(reason: &str) -> String {
    if reason.contains("expects an input value") {
        return "required".into();
    }
    let ty = reason.split('"').nth(1).unwrap_or_default();
    let ty = ty.strip_prefix("optional_").unwrap_or(ty);
    let expected = if ty.starts_with("integer(uint") || ty.starts_with("integer_uint") {
        "a non-negative integer"
    } else if ty.starts_with("integer") {
        "an integer"
    } else if ty.starts_with("number") {
        "a number"
    } else if ty == "boolean" {
        "true or false"
    } else if ty.starts_with("string") {
        "a string"
    } else {
        return reason.to_string();
    };
    format!("expected {expected}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_failures_say_what_to_send() {
        assert_eq!(
            describe_param_failure(
                r#"failed to parse "integer(uint64)": invalid digit found in string (occurred while parsing "optional_integer(uint64)")"#
            ),
            "expected a non-negative integer"
        );
        assert_eq!(
            describe_param_failure(r#"Type "integer(int64)" expects an input value."#),
            "required"
        );
        assert_eq!(
            describe_param_failure(r#"failed to parse "integer_int64": invalid digit"#),
            "expected an integer"
        );
    }

    #[test]
    fn list_types_read_as_english() {
        assert_eq!(plural("a string"), "strings");
        assert_eq!(plural("an integer"), "integers");
        assert_eq!(plural("a non-negative integer"), "non-negative integers");
        assert_eq!(plural("a list of strings"), "lists of strings");
        assert_eq!(plural("true or false"), "booleans");
    }
}
