//! `vprobe doctor`: what this kernel and this process can do.

use std::io::Write;
use std::process::ExitCode;

use vprobe_engine::kernel::Features;
use vprobe_engine::session::{Session, SessionOptions};

use crate::cli::{Format, OutputArgs};
use crate::exit::Status;
use crate::say;

/// Prints the capability report; exits 4 when vprobe cannot work here.
pub fn run(output: &OutputArgs) -> anyhow::Result<ExitCode> {
    let json = output.format() == Format::Json;
    let mut features = Features::detect();
    let privileged = features.get("privileges").is_some_and(|f| f.ok);
    if privileged {
        match Session::new(SessionOptions::default()) {
            Ok(mut s) => s.load_features(&mut features),
            Err(e) => features.push("session", false, e.to_string()),
        }
    } else {
        for name in [
            "tp_btf",
            "raw_tracepoint",
            "tracepoint",
            "ringbuf",
            "fentry",
        ] {
            features.push(
                name,
                false,
                "not checked: loading a test program needs root or CAP_BPF+CAP_PERFMON".into(),
            );
        }
    }
    // vprobe works when it can load with privileges, BTF, and some tracepoint mechanism
    let ok = |n: &str| features.get(n).is_some_and(|f| f.ok);
    let usable = ok("privileges") && ok("btf") && (ok("tp_btf") || ok("tracepoint"));
    let mut out = say::data(output.file.as_deref())?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&features)?)?;
    } else {
        writeln!(out, "kernel {}", features.kernel)?;
        let width = features
            .features
            .iter()
            .map(|f| f.name.len())
            .max()
            .unwrap_or(0);
        for f in &features.features {
            writeln!(
                out,
                "  {:width$}  {:3}  {}",
                f.name,
                if f.ok { "yes" } else { "no" },
                f.detail
            )?;
        }
        writeln!(
            out,
            "{}",
            if usable {
                "vprobe can run here"
            } else {
                "vprobe cannot run here: see the `no` lines"
            }
        )?;
    }
    out.flush()?;
    Ok(if usable {
        ExitCode::SUCCESS
    } else {
        Status::Unsupported.into()
    })
}
