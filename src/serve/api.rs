//! The server's request and response shapes: OpenAI's embeddings API (`POST /v1/embeddings`, so existing
//! clients work), `/classify` (texts and pairs → labels and probabilities, the keys of `mxrt run --json`),
//! `/run` (MLP feature rows → outputs), and one JSON error shape for every failure.

use base64::Engine;
use mxrt_runtime::Classification;
use serde_json::{json, Value};

/// A failed request: HTTP status and a message saying what to change. Rendered as OpenAI's error object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }

    /// `{"error": {"message", "type", "param", "code"}}` as OpenAI's API answers errors.
    pub fn body(&self) -> Value {
        let kind = match self.status {
            400 | 404 | 405 | 413 => "invalid_request_error",
            503 => "overloaded_error",
            _ => "server_error",
        };
        json!({"error": {"message": self.message, "type": kind, "param": null, "code": self.status}})
    }
}

/// What `/v1/embeddings` was asked.
#[derive(Debug, PartialEq)]
pub struct EmbeddingsRequest {
    pub texts: Vec<String>,
    /// `encoding_format: "base64"`: each vector as the base64 of its little-endian f32 bytes (what OpenAI's
    /// Python client asks for by default).
    pub base64: bool,
}

/// The request's texts: `input` is a string or an array of strings (token-id arrays are refused).
pub fn parse_embeddings(
    body: &Value,
    max_texts: usize,
    width: usize,
) -> Result<EmbeddingsRequest, ApiError> {
    let texts = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(ApiError::bad_request(format!(
                    "input[{i}] must be a string (token-id inputs are not supported)"
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::bad_request(
                "input must be a string or an array of strings",
            ))
        }
        None => return Err(ApiError::bad_request("missing field input")),
    };
    check_count("input", texts.len(), max_texts)?;
    let base64 = match body.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(f)) if f == "float" => false,
        Some(Value::String(f)) if f == "base64" => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "encoding_format must be \"float\" or \"base64\", found {other}"
            )))
        }
    };
    match body.get("dimensions") {
        None | Some(Value::Null) => {}
        Some(d) if d.as_u64() == Some(width as u64) => {}
        Some(d) => {
            return Err(ApiError::bad_request(format!(
                "dimensions {d}: this model's embeddings have {width} (they cannot be shortened)"
            )))
        }
    }
    Ok(EmbeddingsRequest { texts, base64 })
}

/// OpenAI's embeddings response: a list of `{"object": "embedding", "index", "embedding"}` and the usage.
pub fn embeddings_response(
    model: &str,
    vectors: &[Vec<f32>],
    base64: bool,
    tokens: usize,
) -> Value {
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })
}

/// `/classify`: `texts` (strings) and/or `pairs` (two-string arrays), answered in that order.
pub fn parse_classify(
    body: &Value,
    max_texts: usize,
) -> Result<Vec<(String, Option<String>)>, ApiError> {
    let mut inputs = Vec::new();
    if let Some(texts) = body.get("texts") {
        let texts = texts
            .as_array()
            .ok_or_else(|| ApiError::bad_request("texts must be an array of strings"))?;
        for (i, t) in texts.iter().enumerate() {
            let t = t
                .as_str()
                .ok_or_else(|| ApiError::bad_request(format!("texts[{i}] must be a string")))?;
            inputs.push((t.to_string(), None));
        }
    }
    if let Some(pairs) = body.get("pairs") {
        let pairs = pairs.as_array().ok_or_else(|| {
            ApiError::bad_request("pairs must be an array of [text, text_pair] arrays")
        })?;
        for (i, p) in pairs.iter().enumerate() {
            match p.as_array().map(Vec::as_slice) {
                Some([Value::String(a), Value::String(b)]) => {
                    inputs.push((a.clone(), Some(b.clone())))
                }
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "pairs[{i}] must be an array of two strings"
                    )))
                }
            }
        }
    }
    if body.get("texts").is_none() && body.get("pairs").is_none() {
        return Err(ApiError::bad_request(
            "give texts (an array of strings) and/or pairs (an array of [text, text_pair])",
        ));
    }
    check_count("texts and pairs", inputs.len(), max_texts)?;
    Ok(inputs)
}

/// `/classify`'s answer: per input the keys `mxrt run --json` prints (label, probabilities, logits; a
/// regression head's score), and the model's labels.
pub fn classify_response(
    model: &str,
    labels: &[String],
    inputs: &[(String, Option<String>)],
    outputs: Vec<Vec<f32>>,
) -> Value {
    let results: Vec<Value> = inputs
        .iter()
        .zip(outputs)
        .map(|((text, pair), logits)| {
            let c = Classification::from_logits(labels, logits);
            let mut r = match c.score {
                Some(score) => json!({"text": text, "score": score, "logits": c.logits}),
                None => json!({"text": text, "label": c.label, "probabilities": c.probabilities, "logits": c.logits}),
            };
            if let Some(p) = pair {
                r["text_pair"] = json!(p);
            }
            r
        })
        .collect();
    json!({"model": model, "labels": labels, "results": results})
}

/// `/run`: `inputs`, an array of rows of `features` numbers each; the rows row-major and their count.
pub fn parse_run(
    body: &Value,
    features: usize,
    max_rows: usize,
) -> Result<(Vec<f32>, usize), ApiError> {
    let rows = body
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "give inputs: an array of rows of {features} numbers"
            ))
        })?;
    check_count("inputs", rows.len(), max_rows)?;
    let mut x = Vec::with_capacity(rows.len() * features);
    for (i, row) in rows.iter().enumerate() {
        let row = row
            .as_array()
            .filter(|r| r.len() == features)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "inputs[{i}] must be an array of {features} numbers"
                ))
            })?;
        for (j, v) in row.iter().enumerate() {
            let v = v
                .as_f64()
                .map(|v| v as f32)
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                    "inputs[{i}][{j}] must be a finite number within the range of f32, found {v}"
                ))
                })?;
            x.push(v);
        }
    }
    Ok((x, rows.len()))
}

/// `/run`'s answer: per row the outputs and, when the model names its classes, the argmax label.
pub fn run_response(model: &str, labels: &[String], outputs: Vec<Vec<f32>>) -> Value {
    let results: Vec<Value> = outputs
        .into_iter()
        .map(|out| {
            let label = labels.get(mxrt_runtime::argmax(&out)).cloned();
            json!({"outputs": out, "label": label})
        })
        .collect();
    json!({"model": model, "results": results})
}

/// At least one and at most `max` inputs per request (more: 413, the payload is too large).
fn check_count(what: &str, n: usize, max: usize) -> Result<(), ApiError> {
    if n == 0 {
        return Err(ApiError::bad_request(format!("{what}: nothing to run")));
    }
    if n > max {
        return Err(ApiError::new(
            413,
            format!(
                "{n} {what} in one request; the limit is {max} (--max-inputs): split the request"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_requests_take_a_string_or_strings_and_say_what_is_wrong() {
        let ok = |v: Value| parse_embeddings(&v, 4, 32).unwrap();
        assert_eq!(ok(json!({"input": "a"})).texts, ["a"]);
        let r = ok(json!({"input": ["a", "b"], "encoding_format": "base64", "model": "x"}));
        assert_eq!((r.texts.len(), r.base64), (2, true));
        let err = |v: Value| parse_embeddings(&v, 4, 32).unwrap_err();
        assert_eq!(err(json!({"input": [1, 2]})).status, 400);
        assert!(err(json!({"input": [1, 2]})).message.contains("token-id"));
        assert!(err(json!({})).message.contains("missing field input"));
        assert_eq!(err(json!({"input": ["a", "b", "c", "d", "e"]})).status, 413);
        assert_eq!(err(json!({"input": []})).status, 400);
        assert!(err(json!({"input": "a", "dimensions": 8}))
            .message
            .contains("32"));
        assert!(err(json!({"input": "a", "encoding_format": "int8"}))
            .message
            .contains("base64"));
    }

    #[test]
    fn base64_embeddings_are_little_endian_f32() {
        let r = embeddings_response("m", &[vec![1.0, -2.5]], true, 3);
        let b = r["data"][0]["embedding"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD.decode(b).unwrap();
        assert_eq!(
            bytes,
            [1.0f32.to_le_bytes(), (-2.5f32).to_le_bytes()].concat()
        );
        assert_eq!(r["usage"]["prompt_tokens"], 3);
        assert_eq!(r["object"], "list");
    }

    #[test]
    fn classify_and_run_requests_are_checked() {
        let inputs = parse_classify(&json!({"texts": ["a"], "pairs": [["b", "c"]]}), 8).unwrap();
        assert_eq!(inputs, [("a".into(), None), ("b".into(), Some("c".into()))]);
        assert!(parse_classify(&json!({"pairs": [["b"]]}), 8)
            .unwrap_err()
            .message
            .contains("pairs[0]"));
        assert!(parse_classify(&json!({"text": "a"}), 8).is_err());
        let (x, rows) = parse_run(&json!({"inputs": [[1, 2], [3, 4.5]]}), 2, 8).unwrap();
        assert_eq!((x, rows), (vec![1.0, 2.0, 3.0, 4.5], 2));
        let e = parse_run(&json!({"inputs": [[1, 2, 3]]}), 2, 8).unwrap_err();
        assert!(e
            .message
            .contains("inputs[0] must be an array of 2 numbers"));
        let e = parse_run(&json!({"inputs": [[1, 1e300]]}), 2, 8).unwrap_err();
        assert!(e.message.contains("inputs[0][1]"));
    }
}
