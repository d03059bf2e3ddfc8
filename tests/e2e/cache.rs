//! The relocation cache (`VPROBE_CACHE_DIR`): a cold run fills it, a warm run
//! loads without parsing the kernel's BTF and attaches the same way, and a
//! damaged or unsafe cache only costs a parse.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::util::{self, output_within, Run, TempDir, VPROBE};

const SCRIPT: &str = r#"probe("skb.drop").count("n"); probe("tcp.retransmit").count("r");"#;

/// Runs SCRIPT for a moment with the cache in `dir`, verbosely.
fn run_with_cache(dir: &Path) -> Run {
    let args = ["-v", "-e", SCRIPT, "-d", "100ms", "--format", "json"];
    let (out, timed_out) = output_within(
        Command::new(VPROBE).args(args).env("VPROBE_CACHE_DIR", dir),
        Duration::from_secs(30),
    );
    let run = Run::from_output(
        format!("vprobe {args:?} (cache {})", dir.display()),
        out,
        timed_out,
    );
    run.assert_no_panic();
    assert_eq!(run.status.code(), Some(0), "{}", run.describe());
    run
}

/// The mechanisms the run's summary names, in order.
fn mechanisms(run: &Run) -> Vec<String> {
    let summary = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"] == "summary")
        .unwrap_or_else(|| panic!("no summary\n{}", run.describe()));
    summary["probes"]
        .as_array()
        .expect("probes")
        .iter()
        .map(|p| util::scalar(&p["mechanism"]))
        .collect()
}

/// The one kernel folder in the cache, and the entry of object `name` in it.
fn entry(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let kernels: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kernels.len(), 1, "{kernels:?}");
    let kernel = kernels[0].clone();
    let found = std::fs::read_dir(&kernel)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let f = p.file_name().unwrap().to_string_lossy().into_owned();
            f.starts_with(&format!("{name}-")) && f.ends_with(".reloc")
        })
        .unwrap_or_else(|| panic!("no entry for {name} in {}", kernel.display()));
    (kernel, found)
}

#[test]
fn a_warm_cache_spares_the_btf_parse_and_attaches_the_same() {
    if !util::root_or_skip("a_warm_cache_spares_the_btf_parse_and_attaches_the_same") {
        return;
    }
    let _lock = util::kernel_lock();
    let dir = TempDir::new("cache");
    let cold = run_with_cache(dir.path());
    assert!(
        cold.stderr.contains("kernel BTF parsed"),
        "{}",
        cold.describe()
    );
    let (kernel, skb) = entry(dir.path(), "skb_drop");
    entry(dir.path(), "tcp");
    let ids = std::fs::read_to_string(kernel.join("btf-ids")).unwrap();
    assert!(ids.contains("typedef btf_trace_kfree_skb "), "{ids}");

    let warm = run_with_cache(dir.path());
    assert!(
        warm.stderr.contains("kernel BTF not parsed"),
        "{}",
        warm.describe()
    );
    assert_eq!(mechanisms(&warm), mechanisms(&cold));

    // a damaged entry is relocated again and written whole
    let whole = std::fs::read(&skb).unwrap();
    std::fs::write(&skb, &whole[..whole.len() / 2]).unwrap();
    let mended = run_with_cache(dir.path());
    assert!(
        mended.stderr.contains("kernel BTF parsed"),
        "{}",
        mended.describe()
    );
    assert_eq!(mechanisms(&mended), mechanisms(&cold));
    assert_eq!(std::fs::read(&skb).unwrap(), whole);
}

#[test]
fn a_cache_others_can_write_is_not_used() {
    if !util::root_or_skip("a_cache_others_can_write_is_not_used") {
        return;
    }
    let _lock = util::kernel_lock();
    let dir = TempDir::new("cache-open");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = run_with_cache(dir.path());
    assert!(
        run.stderr
            .contains("kernel BTF parsed: no relocation cache"),
        "{}",
        run.describe()
    );
    // nothing is made in it
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
