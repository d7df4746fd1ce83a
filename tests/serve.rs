//! `mxrt serve` on an ephemeral loopback port, through a plain HTTP/1.1 client written here: answers equal
//! `mxrt run` (≤ 1e-6), OpenAI's embeddings schema, JSON errors with their statuses, requests gathered into
//! one forward pass, and a SIGTERM that lets the requests in flight finish.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("runtime/tests/fixtures")
        .join(name)
}

/// A running server; killed when dropped (unless it already exited).
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(model: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mxrt"))
            .arg("serve")
            .arg(model)
            .args(["--port", "0"])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let port = loop {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "the server exited before listening"
            );
            if let Some(at) = line.find("listening on http://127.0.0.1:") {
                let rest = &line[at + "listening on http://127.0.0.1:".len()..];
                break rest.trim().parse().unwrap();
            }
        };
        // Keep draining stderr so that the server never blocks writing to it.
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = stderr.read_to_string(&mut sink);
        });
        Server { child, port }
    }

    fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, String, String) {
        http(self.port, method, path, body)
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let (status, _, text) = self.request("POST", path, body.to_string().as_bytes());
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request on its own connection: status, headers (lowercased) and body.
fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // A server refusing a large body may close before reading it all: the answer still comes.
    let _ = s
        .write_all(head.as_bytes())
        .and_then(|()| s.write_all(body));
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_lowercase(), body.to_string())
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

const TEXTS: [&str; 3] = ["the movie was very good!", "boring plot", "a great film"];

#[test]
fn classify_and_run_answer_as_mxrt_run_does() {
    let model = fixture("tiny-classifier.mxrt");
    let server = Server::start(&model, &[]);
    let (status, r) = server.post(
        "/classify",
        &json!({"texts": TEXTS, "pairs": [["the movie was good", "a great film"]]}),
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["labels"], json!(["negative", "positive"]));
    assert_eq!(r["model"], "tiny-classifier");
    let m = model.to_str().unwrap();
    let mut args = vec!["run", m, "--json"];
    for t in TEXTS {
        args.extend(["--text", t]);
    }
    let mut want = run_json(&args);
    want.extend(run_json(&[
        "run",
        m,
        "--json",
        "--text",
        "the movie was good",
        "--text-pair",
        "a great film",
    ]));
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    for (got, want) in results.iter().zip(&want) {
        assert_eq!(got["label"], want["label"]);
        assert_eq!(got["text"], want["text"]);
        assert_eq!(got["text_pair"], want["text_pair"]);
        for key in ["logits", "probabilities"] {
            let d = max_abs_diff(&floats(&got[key]), &floats(&want[key]));
            assert!(d <= 1e-6, "{key}: {got} vs {want}");
        }
    }

    // An MLP: rows in, the outputs `mxrt run --input` gives.
    let mlp = fixture("tiny-mlp.mxrt");
    let server = Server::start(&mlp, &[]);
    let rows: Vec<Vec<f32>> = (0..5)
        .map(|r| {
            (0..16)
                .map(|c| ((r * 16 + c) as f32 * 0.37).sin() * 2.0)
                .collect()
        })
        .collect();
    let (status, r) = server.post("/run", &json!({ "inputs": rows }));
    assert_eq!(status, 200, "{r}");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("x.csv");
    let text: String = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|v| format!("{v:e}"))
                .collect::<Vec<_>>()
                .join(",")
                + "\n"
        })
        .collect();
    std::fs::write(&csv, text).unwrap();
    let want = run_json(&[
        "run",
        mlp.to_str().unwrap(),
        "--input",
        csv.to_str().unwrap(),
        "--json",
    ]);
    for (got, want) in r["results"].as_array().unwrap().iter().zip(&want) {
        assert_eq!(got["label"], want["label"]);
        assert!(max_abs_diff(&floats(&got["outputs"]), &floats(&want["outputs"])) <= 1e-6);
    }
}

#[test]
fn embeddings_follow_openais_schema_and_equal_mxrt_run() {
    let model = fixture("tiny-encoder.mxrt");
    let server = Server::start(&model, &["--model-name", "tiny"]);
    let (status, r) = server.post("/v1/embeddings", &json!({"input": TEXTS, "model": "tiny"}));
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["object"], "list");
    assert_eq!(r["model"], "tiny");
    let mut args = vec!["run", model.to_str().unwrap(), "--json", "--tokens"];
    for t in TEXTS {
        args.extend(["--text", t]);
    }
    let want = run_json(&args);
    let data = r["data"].as_array().unwrap();
    assert_eq!(data.len(), TEXTS.len());
    let mut tokens = 0;
    for (i, (d, w)) in data.iter().zip(&want).enumerate() {
        assert_eq!(d["object"], "embedding");
        assert_eq!(d["index"], i);
        let (got, want_v) = (floats(&d["embedding"]), floats(&w["embedding"]));
        assert_eq!(got.len(), 32);
        assert!(max_abs_diff(&got, &want_v) <= 1e-6);
        tokens += w["input_ids"].as_array().unwrap().len();
    }
    assert_eq!(r["usage"]["prompt_tokens"], tokens);
    assert_eq!(r["usage"]["total_tokens"], tokens);

    // One string, base64: the little-endian f32 bytes of the same vector.
    let (status, r) = server.post(
        "/v1/embeddings",
        &json!({"input": TEXTS[1], "encoding_format": "base64"}),
    );
    assert_eq!(status, 200, "{r}");
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(r["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert!(max_abs_diff(&decoded, &floats(&want[1]["embedding"])) <= 1e-6);
}

#[test]
fn errors_are_json_with_the_status_that_says_why() {
    let server = Server::start(
        &fixture("tiny-classifier.mxrt"),
        &[
            "--max-body-bytes",
            "2000",
            "--max-inputs",
            "4",
            "--max-tokens",
            "40",
        ],
    );
    let check = |(status, head, body): (u16, String, String), want: u16, needle: &str| {
        assert_eq!(status, want, "{body}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], want);
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message}");
    };
    check(
        server.request("POST", "/classify", b"{\"texts\": [\"a\""),
        400,
        "not valid JSON",
    );
    check(
        server.request("POST", "/classify", b"[1, 2]"),
        400,
        "JSON object",
    );
    check(
        server.request("POST", "/classify", b"{\"texts\": [1]}"),
        400,
        "texts[0]",
    );
    let big = format!("{{\"texts\": [\"{}\"]}}", "a ".repeat(2000));
    check(
        server.request("POST", "/classify", big.as_bytes()),
        413,
        "too large",
    );
    let many = json!({"texts": ["a", "b", "c", "d", "e"]}).to_string();
    check(
        server.request("POST", "/classify", many.as_bytes()),
        413,
        "limit is 4",
    );
    let long = json!({"texts": ["good ".repeat(60)]}).to_string();
    check(
        server.request("POST", "/classify", long.as_bytes()),
        413,
        "tokens",
    );
    check(
        server.request("GET", "/nowhere", b""),
        404,
        "no route /nowhere",
    );
    check(
        server.request("GET", "/classify", b""),
        405,
        "GET is not allowed",
    );
    let embed = json!({"input": "a"}).to_string();
    check(
        server.request("POST", "/v1/embeddings", embed.as_bytes()),
        400,
        "use POST /classify",
    );
    let (status, _, body) = server.request("GET", "/health", b"");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"],
        "ok"
    );
    let (_, head, metrics) = server.request("GET", "/metrics", b"");
    assert!(head.contains("text/plain"));
    assert!(
        metrics.contains("mxrt_requests_total{route=\"/classify\",status=\"413\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mxrt_request_errors_total{route=\"other\"} 1"),
        "{metrics}"
    );
}

/// Four concurrent `/classify` requests of two texts each, one thread per request.
fn four_classify_requests(port: u16) -> Vec<std::thread::JoinHandle<(u16, String, String)>> {
    (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let body = json!({"texts": [TEXTS[i % 3], "a great film"]}).to_string();
                http(port, "POST", "/classify", body.as_bytes())
            })
        })
        .collect()
}

/// Requests that arrive within the batch window run as one forward pass; a SIGTERM while they wait lets
/// them finish (every one answered 200) and the server exits with status 0.
#[test]
fn waiting_requests_share_a_batch_and_finish_on_sigterm() {
    let mut server = Server::start(
        &fixture("tiny-classifier.mxrt"),
        &["--batch-window-ms", "1500"],
    );
    let port = server.port;
    let clients = four_classify_requests(port);
    // All four are in the batcher's window (1.5 s) when the signal comes.
    std::thread::sleep(Duration::from_millis(500));
    let (_, _, metrics) = server.request("GET", "/metrics", b"");
    assert!(metrics.contains("mxrt_batches_total 0"), "{metrics}");
    let status = server.terminate();
    for c in clients {
        let (code, _, body) = c.join().unwrap();
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["results"].as_array().unwrap().len(), 2);
    }
    assert!(status.success(), "{status}");

    // The same four requests, counted: one forward pass of 8 texts.
    let server = Server::start(
        &fixture("tiny-classifier.mxrt"),
        &["--batch-window-ms", "1000"],
    );
    let port = server.port;
    for c in four_classify_requests(port) {
        assert_eq!(c.join().unwrap().0, 200);
    }
    let (_, _, metrics) = server.request("GET", "/metrics", b"");
    assert!(metrics.contains("mxrt_batches_total 1\n"), "{metrics}");
    assert!(metrics.contains("mxrt_batch_inputs_sum 8\n"), "{metrics}");
}
