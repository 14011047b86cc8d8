//! rsigma-eval reads our events directly through its `Event` trait: no JSON conversion.
use std::borrow::Cow;

use rsigma_eval::event::EventValue;

use super::{Event, Value};

impl Value {
    /// The value as rsigma's matchers read it (borrowed).
    pub fn as_event_value(&self) -> EventValue<'_> {
        match self {
            Value::Str(s) => EventValue::Str(Cow::Borrowed(s)),
            Value::Int(n) => EventValue::Int(*n),
            Value::Bool(b) => EventValue::Bool(*b),
        }
    }
}

impl rsigma_eval::Event for Event {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        self.get(path).map(Value::as_event_value)
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        self.fields.iter().any(|(_, v)| match v {
            Value::Str(s) => pred(s),
            _ => false,
        })
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        self.fields
            .iter()
            .filter_map(|(_, v)| match v {
                Value::Str(s) => Some(Cow::Borrowed(s.as_str())),
                _ => None,
            })
            .collect()
    }

    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        for (_, v) in &self.fields {
            if let Value::Str(s) = v {
                visit(s);
            }
        }
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    fn field_keys(&self) -> Vec<Cow<'_, str>> {
        self.fields
            .iter()
            .map(|(k, _)| Cow::Borrowed(k.as_ref()))
            .collect()
    }
}
