//! deploy/: the systemd unit, the container image and the Kubernetes
//! manifests. Each is parsed, checked for the shape it promises, and the
//! command it runs is run here for real, with the capabilities it grants
//! and nothing more (as `nobody` for the unit, as root without other
//! capabilities for the pod), for two seconds: vprobe accepts it, attaches
//! the deployed script and ends with its summary.
//!
//! What cannot be tested here: building the image (no container engine
//! runs on this machine) and a real cluster or systemd as PID 1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use crate::support::util::{self, repo_root, Run, TempDir, VPROBE};

const RUN_LIMIT: Duration = Duration::from_secs(60);
/// The fleet script every manifest runs.
const SCRIPT: &str = "macvtap_watch.rhai";

fn read(rel: &str) -> String {
    let p = repo_root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The unit's `[Service]` settings: key → values in order.
fn unit_settings(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not KEY=VALUE: {line}"));
        out.entry(format!("{section}.{k}"))
            .or_default()
            .push(v.to_string());
    }
    out
}

/// Capabilities as setpriv takes them: `CAP_BPF` → `+bpf`.
fn setpriv_caps(caps: &[String]) -> String {
    let mut s = String::from("-all");
    for c in caps {
        let name = c.trim_start_matches("CAP_").to_ascii_lowercase();
        s.push_str(",+");
        s.push_str(&name);
    }
    s
}

/// Runs `argv` (a deployed command, paths already mapped to this checkout)
/// for 2 s with only `caps`, as `nobody` or as root, and returns the run.
fn run_deployed(argv: &[String], caps: &[String], nobody: bool, dir: &TempDir) -> Run {
    let caps = setpriv_caps(caps);
    let mut cmd = Command::new("setpriv");
    if nobody {
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
    }
    cmd.arg(format!("--inh-caps={caps}"))
        .arg(format!("--ambient-caps={caps}"))
        .arg(format!("--bounding-set={caps}"))
        .args(argv)
        .args(["--duration", "2s"])
        .current_dir(dir.path());
    let (out, timed_out) = util::output_within(&mut cmd, RUN_LIMIT);
    Run::from_output(format!("setpriv {caps} {argv:?}"), out, timed_out)
}

/// A copy of the binary and of deploy/scripts that `nobody` can read.
fn staged(dir: &TempDir) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.path().join("vprobe");
    std::fs::copy(VPROBE, &bin).expect("copy vprobe");
    let scripts = dir.path().join("scripts");
    std::fs::create_dir_all(&scripts).expect("mkdir");
    for e in std::fs::read_dir(repo_root().join("deploy/scripts")).expect("deploy/scripts") {
        let p = e.expect("entry").path();
        std::fs::copy(&p, scripts.join(p.file_name().expect("a name"))).expect("copy script");
    }
    for p in [dir.path(), &scripts] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    (bin, scripts)
}

/// `argv` with the image's paths mapped to the staged copies, and the
/// metrics address replaced by a free port (the test's own).
fn mapped(argv: &[String], bin: &Path, scripts: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = argv.iter().peekable();
    while let Some(a) = it.next() {
        if a == "--metrics" {
            let addr = it.next().expect("an address after --metrics");
            assert!(
                addr.parse::<std::net::SocketAddr>().is_ok(),
                "--metrics {addr} is not ADDR:PORT"
            );
            out.extend(["--metrics".to_string(), "127.0.0.1:0".to_string()]);
            continue;
        }
        let a = a
            .replace("/usr/local/bin/vprobe", &bin.display().to_string())
            .replace("/etc/vprobe/scripts", &scripts.display().to_string());
        out.push(a);
    }
    out
}

/// A run of a deployed command: it succeeded, attached the fleet script and
/// served metrics.
fn assert_fleet_run(run: &Run) {
    run.assert_no_panic();
    assert!(run.status.success(), "{}", run.describe());
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{}", run.describe())))
        .collect();
    let start = lines
        .iter()
        .find(|l| l["type"] == "start")
        .expect("a start line");
    assert!(start["metrics"].is_string(), "{start}");
    assert_eq!(start["script_name"], "macvtap_watch", "{start}");
    let summary = lines.last().expect("lines");
    assert_eq!(summary["type"], "summary", "{}", run.describe());
    for m in [
        "macvtap_drops",
        "ring_occupancy",
        "drops_by_layer",
        "retransmits",
    ] {
        assert!(summary["maps"][m].is_object(), "no map {m}: {summary}");
    }
}

#[test]
fn the_systemd_unit_verifies_and_runs_with_only_its_capabilities() {
    if !util::root_or_skip("deploy::the_systemd_unit_verifies_and_runs_with_only_its_capabilities")
    {
        return;
    }
    let text = read("deploy/systemd/vprobe@.service");
    let s = unit_settings(&text);
    let one = |k: &str| -> &str {
        match s.get(k).map(Vec::as_slice) {
            Some([v]) => v,
            other => panic!("{k}: expected one value, got {other:?}"),
        }
    };
    assert_eq!(one("Service.Restart"), "on-failure");
    assert_eq!(one("Service.KillSignal"), "SIGTERM");
    assert_eq!(one("Service.DynamicUser"), "yes");
    assert_eq!(one("Install.WantedBy"), "multi-user.target");
    let caps: Vec<String> = one("Service.AmbientCapabilities")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(one("Service.CapabilityBoundingSet"), caps.join(" "));
    assert!(!caps.iter().any(|c| c == "CAP_SYS_ADMIN"), "{caps:?}");

    // systemd's own check, on a copy that names this build's binary
    let dir = TempDir::new("deploy-unit");
    let (bin, scripts) = staged(&dir);
    let copy = dir.write(
        "vprobe@macvtap_watch.service",
        &text.replace("/usr/local/bin/vprobe", &bin.display().to_string()),
    );
    let (out, _) = util::output_within(
        Command::new("systemd-analyze").arg("verify").arg(&copy),
        RUN_LIMIT,
    );
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // ExecStart as systemd expands it for vprobe@macvtap_watch with the defaults
    let env: BTreeMap<&str, &str> = s["Service.Environment"]
        .iter()
        .map(|e| e.split_once('=').expect("KEY=VALUE"))
        .collect();
    let instance = SCRIPT.trim_end_matches(".rhai");
    let mut argv = Vec::new();
    for w in one("Service.ExecStart").split_whitespace() {
        if let Some(k) = w.strip_prefix("${").and_then(|w| w.strip_suffix('}')) {
            argv.push(env[k].to_string());
        } else if let Some(k) = w.strip_prefix('$') {
            argv.extend(env[k].split_whitespace().map(str::to_string));
        } else {
            argv.push(w.replace("%i", instance));
        }
    }
    assert_eq!(argv[1], "run", "{argv:?}");
    let _k = util::kernel_lock();
    let run = run_deployed(&mapped(&argv, &bin, &scripts), &caps, true, &dir);
    assert_fleet_run(&run);
}

#[test]
fn the_kubernetes_manifests_parse_and_the_pod_command_runs_with_its_capabilities() {
    if !util::root_or_skip(
        "deploy::the_kubernetes_manifests_parse_and_the_pod_command_runs_with_its_capabilities",
    ) {
        return;
    }
    let docs = YamlLoader::load_from_str(&read("deploy/kubernetes/vprobe.yaml"))
        .unwrap_or_else(|e| panic!("deploy/kubernetes/vprobe.yaml: {e}"));
    let kind = |k: &str| -> &Yaml {
        docs.iter()
            .find(|d| d["kind"].as_str() == Some(k))
            .unwrap_or_else(|| panic!("no {k} in vprobe.yaml"))
    };
    let cm = kind("ConfigMap");
    let ds = kind("DaemonSet");
    assert_eq!(ds["apiVersion"].as_str(), Some("apps/v1"));
    let pod = &ds["spec"]["template"];
    let spec = &pod["spec"];
    assert_eq!(spec["hostNetwork"].as_bool(), Some(true));
    let c = &spec["containers"][0];
    let strings = |y: &Yaml| -> Vec<String> {
        y.as_vec()
            .unwrap_or_else(|| panic!("not a list: {y:?}"))
            .iter()
            .map(|s| s.as_str().expect("a string").to_string())
            .collect()
    };
    let mut argv = strings(&c["command"]);
    argv.extend(strings(&c["args"]));
    let port = argv
        .iter()
        .position(|a| a == "--metrics")
        .map(|i| argv[i + 1].rsplit(':').next().expect("a port").to_string())
        .expect("the pod serves --metrics");
    let ann = &pod["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(ann["prometheus.io/port"].as_str(), Some(port.as_str()));
    assert_eq!(ann["prometheus.io/path"].as_str(), Some("/metrics"));
    assert_eq!(
        c["ports"][0]["containerPort"]
            .as_i64()
            .map(|p| p.to_string()),
        Some(port)
    );

    // the mounts: BTF and tracefs from the host, the scripts from the ConfigMap
    let mounts: BTreeMap<String, String> = c["volumeMounts"]
        .as_vec()
        .expect("volumeMounts")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().expect("name").to_string(),
                m["mountPath"].as_str().expect("path").to_string(),
            )
        })
        .collect();
    let volumes = spec["volumes"].as_vec().expect("volumes");
    let volume = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    for host in ["/sys/kernel/btf", "/sys/kernel/tracing"] {
        let (name, _) = mounts
            .iter()
            .find(|(_, p)| *p == host)
            .unwrap_or_else(|| panic!("{host} is not mounted"));
        assert_eq!(volume(name)["hostPath"]["path"].as_str(), Some(host));
    }
    let (scripts_volume, scripts_dir) = mounts
        .iter()
        .find(|(n, _)| volume(n)["configMap"]["name"].as_str() == cm["metadata"]["name"].as_str())
        .expect("the ConfigMap is mounted");
    let _ = scripts_volume;
    assert!(
        argv.contains(&format!("{scripts_dir}/{SCRIPT}")),
        "{argv:?} does not run {scripts_dir}/{SCRIPT}"
    );
    assert_eq!(
        cm["data"][SCRIPT].as_str(),
        Some(read(&format!("deploy/scripts/{SCRIPT}")).as_str()),
        "the ConfigMap's script differs from deploy/scripts/{SCRIPT}"
    );

    // capabilities: dropped, then the same four the unit grants
    let sc = &c["securityContext"];
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    let caps: Vec<String> = strings(&sc["capabilities"]["add"])
        .into_iter()
        .map(|c| format!("CAP_{c}"))
        .collect();
    let unit = unit_settings(&read("deploy/systemd/vprobe@.service"));
    assert_eq!(
        caps.join(" "),
        unit["Service.AmbientCapabilities"][0],
        "the pod and the unit grant different capabilities"
    );

    // the pod runs as root with only those capabilities
    let dir = TempDir::new("deploy-pod");
    let (bin, scripts) = staged(&dir);
    let _k = util::kernel_lock();
    let run = run_deployed(&mapped(&argv, &bin, &scripts), &caps, false, &dir);
    assert_fleet_run(&run);
}

#[test]
fn the_container_image_runs_what_the_daemonset_runs() {
    if !util::root_or_skip("deploy::the_container_image_runs_what_the_daemonset_runs") {
        return;
    }
    let text = read("deploy/container/Containerfile");
    let mut stages = 0;
    let (mut entrypoint, mut cmd, mut copies, mut expose) = (None, None, Vec::new(), None);
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (op, rest) = line.split_once(' ').unwrap_or((line, ""));
        let json = |s: &str| -> Vec<String> {
            serde_json::from_str(s)
                .unwrap_or_else(|e| panic!("{op} is not an exec-form JSON array ({e}): {s}"))
        };
        match op {
            "FROM" => stages += 1,
            "WORKDIR" | "RUN" => {}
            "COPY" => copies.push(rest.to_string()),
            "EXPOSE" => expose = Some(rest.to_string()),
            "ENTRYPOINT" => entrypoint = Some(json(rest)),
            "CMD" => cmd = Some(json(rest)),
            other => panic!("unexpected instruction {other} in the Containerfile"),
        }
    }
    assert_eq!(stages, 2, "a build stage and a runtime stage");
    assert!(
        copies
            .iter()
            .any(|c| c == "deploy/scripts/ /etc/vprobe/scripts/"),
        "{copies:?}"
    );
    let mut argv = entrypoint.expect("ENTRYPOINT");
    argv.extend(cmd.expect("CMD"));
    let port = argv
        .iter()
        .position(|a| a == "--metrics")
        .map(|i| argv[i + 1].rsplit(':').next().expect("a port").to_string());
    assert_eq!(expose, port, "EXPOSE and --metrics name different ports");

    // the same command as the DaemonSet's
    let docs = YamlLoader::load_from_str(&read("deploy/kubernetes/vprobe.yaml")).expect("yaml");
    let ds = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("DaemonSet"))
        .expect("DaemonSet");
    let c = &ds["spec"]["template"]["spec"]["containers"][0];
    let pod: Vec<String> = c["command"]
        .as_vec()
        .into_iter()
        .chain(c["args"].as_vec())
        .flatten()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect();
    assert_eq!(argv, pod);

    let dir = TempDir::new("deploy-image");
    let (bin, scripts) = staged(&dir);
    let _k = util::kernel_lock();
    let run = run_deployed(
        &mapped(&argv, &bin, &scripts),
        &[
            "CAP_BPF",
            "CAP_PERFMON",
            "CAP_SYSLOG",
            "CAP_DAC_READ_SEARCH",
        ]
        .map(String::from),
        false,
        &dir,
    );
    assert_fleet_run(&run);
}
