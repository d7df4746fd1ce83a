//! The metadata object (FORMAT.md section 3): which keys are known and what type each must have.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Checks the types of the known keys; unknown keys are allowed (newer minor versions may add them).
pub fn validate_metadata(meta: &Map<String, Value>) -> Result<()> {
    let bad = |reason: String| Err(Error::InvalidMetadata { reason });
    match meta.get("architecture") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(v) => {
            return bad(format!(
                "`architecture` must be a string or null, found {v}"
            ))
        }
    }
    match meta.get("requires") {
        None => {}
        Some(Value::Array(list)) if list.iter().all(Value::is_string) => {}
        Some(v) => return bad(format!("`requires` must be an array of strings, found {v}")),
    }
    for key in ["hyperparameters", "recipe", "provenance"] {
        match meta.get(key) {
            None | Some(Value::Object(_)) => {}
            Some(v) => return bad(format!("`{key}` must be an object, found {}", type_name(v))),
        }
    }
    if let Some(Value::Object(p)) = meta.get("provenance") {
        if let Some(c) = p.get("converter") {
            if !c.is_string() {
                return bad("`provenance.converter` must be a string".into());
            }
        }
        if let Some(s) = p.get("sources") {
            let Value::Array(sources) = s else {
                return bad("`provenance.sources` must be an array".into());
            };
            for (i, src) in sources.iter().enumerate() {
                let ok = src.get("path").is_some_and(Value::is_string)
                    && src.get("bytes").is_some_and(Value::is_u64)
                    && src
                        .get("sha256")
                        .and_then(Value::as_str)
                        .is_some_and(is_sha256_hex);
                if !ok {
                    return bad(format!("`provenance.sources[{i}]` needs path (string), bytes (integer), sha256 (64 hex digits)"));
                }
            }
        }
    }
    Ok(())
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses metadata bytes: UTF-8, a JSON object, known key types.
pub fn parse_metadata(bytes: &[u8]) -> Result<Map<String, Value>> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error::InvalidMetadata {
        reason: format!("not UTF-8 ({e})"),
    })?;
    let value: Value = serde_json::from_str(text).map_err(|e| Error::InvalidMetadata {
        reason: format!("not valid JSON ({e})"),
    })?;
    let Value::Object(map) = value else {
        return Err(Error::InvalidMetadata {
            reason: format!("must be a JSON object, found {}", type_name(&value)),
        });
    };
    validate_metadata(&map)?;
    Ok(map)
}

/// Features of the model description a reader must implement to compute a file's results correctly (FORMAT.md
/// section 10). None is defined in description 2.0; a later minor version that adds a field which changes
/// results names it here and in the files that use it, so older readers refuse those files instead of
/// silently ignoring the field. 2.1: `leaky_relu` (the MLP op), `hidden_act_relu` and `hidden_act_gelu_tanh`
/// (BERT-family feed-forward blocks with ReLU or GELU's tanh approximation); 2.2: `channel_scales` (the recipe
/// layers' `input_scale` and `output_scale`).
pub const KNOWN_FEATURES: &[&str] = &[
    "leaky_relu",
    "hidden_act_relu",
    "hidden_act_gelu_tanh",
    "channel_scales",
];

/// Refuses a file whose `requires` names a feature this reader does not implement, naming the file's version.
pub fn check_required_features(meta: &Map<String, Value>, version: (u16, u16)) -> Result<()> {
    let Some(Value::Array(list)) = meta.get("requires") else {
        return Ok(());
    };
    for feature in list.iter().filter_map(Value::as_str) {
        if !KNOWN_FEATURES.contains(&feature) {
            return Err(Error::RequiresFeature {
                feature: feature.to_string(),
                major: version.0,
                minor: version.1,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_keys_are_type_checked() {
        assert!(parse_metadata(br#"{"architecture":null,"extra":[1]}"#).is_ok());
        for bad in [
            &br#"[1,2]"#[..],
            br#"{"architecture":3}"#,
            br#"{"recipe":"x"}"#,
            br#"{"provenance":{"sources":[{"path":"a","bytes":1,"sha256":"xyz"}]}}"#,
            br#"{"a":"#,
            b"\xff\xfe",
        ] {
            assert!(
                matches!(parse_metadata(bad), Err(Error::InvalidMetadata { .. })),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let ok = json!({"provenance": {"converter": "x", "sources": [{"path": "a", "bytes": 3, "sha256": "0".repeat(64)}]}});
        assert!(validate_metadata(ok.as_object().unwrap()).is_ok());
    }
}
