//! A real Prometheus server (Debian's `prometheus`) on 127.0.0.1 scraping
//! one target every second, its HTTP query API, and a small HTTP client for
//! both it and vprobe's own endpoint (std only: one GET per connection).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::util::{poll_until, TempDir};

/// The Prometheus binary, as Debian installs it.
pub const PROMETHEUS: &str = "/usr/bin/prometheus";
/// Its companion that lints expositions.
pub const PROMTOOL: &str = "/usr/bin/promtool";

/// A response: status code, headers (lowercased names) and body.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET http://ADDR/PATH` with optional `Accept`, HTTP/1.0 so the server
/// closes after answering; bounded by `limit`.
pub fn get(
    addr: &str,
    path: &str,
    accept: Option<&str>,
    limit: Duration,
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(limit))?;
    s.set_write_timeout(Some(limit))?;
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{accept}\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end in {text:?}")))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: body.to_string(),
    })
}

/// `http://HOST:PORT/PATH` → (`HOST:PORT`, `/PATH`).
pub fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (addr, path) = rest.split_once('/').unwrap_or((rest, ""));
    (addr.to_string(), format!("/{path}"))
}

/// A free TCP port on 127.0.0.1 (free when asked; Prometheus binds it next).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus server scraping one target every second; killed on drop.
pub struct Prometheus {
    child: Child,
    pub addr: String,
    dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`HOST:PORT`) at `/metrics` as job
    /// `vprobe`, and waits until it is ready.
    pub fn start(target: &str) -> Prometheus {
        let dir = TempDir::new("prometheus");
        let config = dir.write(
            "prometheus.yml",
            &format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: vprobe\n    metrics_path: /metrics\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        );
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {PROMETHEUS}: {e}"));
        let p = Prometheus { child, addr, dir };
        let ready = poll_until(Duration::from_secs(60), || {
            get(&p.addr, "/-/ready", None, Duration::from_secs(2)).is_ok_and(|r| r.status == 200)
        });
        assert!(ready, "prometheus not ready within 60 s\n{}", p.log());
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/{what}?query=QUERY`: the `data` of a successful answer.
    pub fn api(&self, what: &str, query: Option<&str>) -> Value {
        let path = match query {
            Some(q) => format!("/api/v1/{what}?query={}", percent_encode(q)),
            None => format!("/api/v1/{what}"),
        };
        let r = get(&self.addr, &path, None, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log()));
        let v: Value = serde_json::from_str(&r.body)
            .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {}", r.body));
        assert_eq!(v["status"], "success", "GET {path}: {v}");
        v["data"].clone()
    }

    /// The raw samples of every series `selector` matches over the last
    /// `window`: (labels, [(unix time, value)]).
    pub fn samples(&self, selector: &str, window: &str) -> Vec<(Value, Vec<(f64, f64)>)> {
        let data = self.api("query", Some(&format!("{selector}[{window}]")));
        data["result"]
            .as_array()
            .expect("a matrix")
            .iter()
            .map(|s| {
                let values = s["values"]
                    .as_array()
                    .expect("values")
                    .iter()
                    .map(|p| {
                        let t = p[0].as_f64().expect("a timestamp");
                        let v: f64 = p[1].as_str().expect("a value").parse().expect("a number");
                        (t, v)
                    })
                    .collect();
                (s["metric"].clone(), values)
            })
            .collect()
    }

    /// Waits (up to `limit`) for the target's scrape to be healthy; panics with
    /// its last error otherwise.
    pub fn wait_target_up(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let t = self.api("targets", None);
            let target = &t["activeTargets"][0];
            if target["health"] == "up" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the vprobe target is not up: {target}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
