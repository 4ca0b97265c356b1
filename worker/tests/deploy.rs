//! `config/deploy/`: the manifests parse and agree with the worker they
//! deploy (grace period above the drain deadline, probes on the worker's
//! endpoints, KEDA counting busy workers' jobs), the alert rules pass
//! `promtool check rules` and their unit tests, and every metric the alerts
//! and the dashboard query is one the worker exposes.

// Test-only file: a failed unwrap is the test failure we want to see.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use monteur_worker::Config;
use monteur_worker::metrics::Metrics;
use serde_yaml::Value;

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/deploy")
        .join(file)
}

/// Every document of a multi-document YAML file.
fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(deploy(file)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

/// The Deployment's worker container, and its config as the pod runs it:
/// the shipped file plus the MONTEUR_* values the manifest sets.
fn worker_of(deployment: &Value) -> (&Value, Config) {
    let worker = deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "worker")
        .unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/monteur.toml");
    (worker, Config::load(Some(&file), env_of(worker)).unwrap())
}

/// The environment a container sets, as name → value.
fn env_of(container: &Value) -> Vec<(String, String)> {
    container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_string(),
                e["value"].as_str()?.to_string(),
            ))
        })
        .collect()
}

#[test]
fn the_deployment_drains_before_it_is_killed_and_probes_the_right_endpoints() {
    let docs = documents("worker.yaml");
    for d in &docs {
        assert!(
            d["apiVersion"].is_string() && d["kind"].is_string(),
            "{d:?}"
        );
    }
    let deployment = kind(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let (worker, config) = worker_of(deployment);
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace > config.worker.drain_deadline_s + 10,
        "grace {grace} s leaves no room after the {} s drain",
        config.worker.drain_deadline_s
    );
    assert!(
        deployment["spec"]["replicas"].is_null(),
        "KEDA owns replicas"
    );
    let port = config
        .worker
        .http_addr
        .parse::<std::net::SocketAddr>()
        .unwrap()
        .port();
    let ports = worker["ports"].as_sequence().unwrap();
    assert!(
        ports
            .iter()
            .any(|p| p["name"] == "metrics" && p["containerPort"].as_u64() == Some(u64::from(port)))
    );
    assert_eq!(worker["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(worker["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(worker["livenessProbe"]["httpGet"]["port"], "metrics");
    // Crash reports go to a mounted folder; the scratch folder is RAM big
    // enough for renders.
    let mounts: Vec<&str> = worker["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert!(
        mounts.contains(&config.diagnostics.dir.as_str()),
        "{mounts:?}"
    );
    assert!(
        mounts.contains(&config.worker.scratch_dir.as_str()),
        "{mounts:?}"
    );
    let shm = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "shm")
        .unwrap();
    assert_eq!(shm["emptyDir"]["medium"], "Memory");
    // The busy signal: a sidecar sets the pod's deletion cost from the
    // worker's in-flight gauge, with RBAC to patch pods and nothing more.
    let sidecar = pod["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "deletion-cost")
        .unwrap();
    let script = sidecar["args"][0].as_str().unwrap();
    assert!(script.contains("controller.kubernetes.io/pod-deletion-cost"));
    assert!(script.contains("monteur_jobs_in_flight"));
    assert!(script.contains(&format!("METRICS_PORT:-{port}")));
    let role = kind(&docs, "Role");
    assert_eq!(role["rules"][0]["resources"][0], "pods");
    let verbs: Vec<&str> = role["rules"][0]["verbs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(verbs, ["get", "patch"]);
}

#[test]
fn keda_counts_jobs_being_worked_on() {
    let docs = documents("keda.yaml");
    let scaled = kind(&docs, "ScaledObject");
    let deployment = kind(&documents("worker.yaml"), "Deployment").clone();
    assert_eq!(
        scaled["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    let (_, config) = worker_of(&deployment);
    // Slots set explicitly: "auto" would follow the node's cores, which
    // KEDA's fixed target cannot.
    assert!(config.worker.concurrency > 0, "set worker.concurrency");
    let triggers = scaled["spec"]["triggers"].as_sequence().unwrap();
    let mut queues: Vec<&str> = Vec::new();
    let auth = kind(&docs, "TriggerAuthentication");
    for trigger in triggers {
        assert_eq!(trigger["type"], "rabbitmq");
        // The management API counts unacknowledged messages; AMQP would not.
        assert_eq!(trigger["metadata"]["protocol"], "http");
        assert_eq!(trigger["metadata"]["mode"], "QueueLength");
        assert_eq!(
            trigger["metadata"]["value"].as_str().unwrap(),
            config.worker.concurrency.to_string()
        );
        assert_eq!(
            trigger["authenticationRef"]["name"],
            auth["metadata"]["name"]
        );
        queues.push(trigger["metadata"]["queueName"].as_str().unwrap());
    }
    // Both lanes scale the fleet, added together, per worker's slots.
    let modifier = &scaled["spec"]["advanced"]["scalingModifiers"];
    let mut names: Vec<&str> = triggers
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    let formula = modifier["formula"].as_str().unwrap();
    assert!(
        names.iter().all(|n| formula.contains(n)) && formula.contains('+'),
        "{formula}"
    );
    assert_eq!(
        modifier["target"].as_str().unwrap(),
        config.worker.concurrency.to_string()
    );
    queues.sort();
    let mut lanes = vec![
        config.worker.queue.as_str(),
        config.worker.interactive_queue.as_str(),
    ];
    lanes.sort();
    assert_eq!(queues, lanes);
    assert!(scaled["spec"]["minReplicaCount"].as_u64().unwrap() >= 1);
}

/// Each container's mount paths.
fn mounts(container: &Value) -> Vec<&str> {
    container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect()
}

#[test]
fn the_worker_holds_no_cluster_token_and_reads_secrets_from_files() {
    let docs = documents("worker.yaml");
    let deployment = kind(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let (worker, config) = worker_of(deployment);
    // No token auto-mounted into any container; only the sidecar mounts a
    // projected one where kubectl looks.
    assert_eq!(pod["automountServiceAccountToken"], false);
    let token_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
    assert!(!mounts(worker).contains(&token_dir));
    let containers = pod["containers"].as_sequence().unwrap();
    let sidecar = containers
        .iter()
        .find(|c| c["name"] == "deletion-cost")
        .unwrap();
    assert!(mounts(sidecar).contains(&token_dir));
    // Secrets never as environment variables (children inherit those).
    for c in containers {
        for e in c["env"].as_sequence().unwrap() {
            assert!(
                e["valueFrom"]["secretKeyRef"].is_null(),
                "{} takes a secret through its environment: {e:?}",
                c["name"].as_str().unwrap()
            );
        }
    }
    // ...but as files inside read-only mounts of the worker.
    let secret_mounts: Vec<&str> = worker["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|m| {
            let name = &m["name"];
            pod["volumes"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|v| &v["name"] == name && !v["secret"].is_null())
        })
        .map(|m| {
            assert_eq!(m["readOnly"], true, "{m:?}");
            m["mountPath"].as_str().unwrap()
        })
        .collect();
    for file in [
        &config.worker.amqp_url_file,
        &config.storage.access_key_file,
        &config.storage.secret_key_file,
        &config.worker.keyring,
    ] {
        assert!(
            secret_mounts
                .iter()
                .any(|m| file.starts_with(&format!("{m}/"))),
            "{file} is not in a mounted secret ({secret_mounts:?})"
        );
    }
    // The deployment passes the daemon's own start checks: storage in the
    // region served, TLS to the broker and storage.
    assert_eq!(config.storage.residency, config.worker.region);
    assert!(!config.worker.allow_plaintext_loopback);
    assert_eq!(
        config
            .worker
            .deployment_problems("amqps://broker.messaging:5671/%2f", &config.storage),
        Vec::<String>::new()
    );
    // Every image pinned by digest.
    for c in containers {
        let image = c["image"].as_str().unwrap();
        let digest = image.split_once("@sha256:").map(|(_, d)| d).unwrap_or("");
        assert!(
            digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
            "{image} is not pinned by digest"
        );
    }
}

#[test]
fn the_network_policy_admits_only_scrapes_and_reaches_only_broker_storage_dns() {
    let docs = documents("worker.yaml");
    let deployment = kind(&docs, "Deployment");
    let policy = kind(&docs, "NetworkPolicy");
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"],
        deployment["spec"]["template"]["metadata"]["labels"]
    );
    let types = policy["spec"]["policyTypes"].as_sequence().unwrap();
    assert!(types.contains(&"Ingress".into()) && types.contains(&"Egress".into()));
    let (_, config) = worker_of(deployment);
    let metrics_port = config
        .worker
        .http_addr
        .parse::<std::net::SocketAddr>()
        .unwrap()
        .port();
    let ports = |rules: &Value| -> Vec<u64> {
        rules
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|r| r["ports"].as_sequence().unwrap().iter())
            .map(|p| p["port"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(ports(&policy["spec"]["ingress"]), [u64::from(metrics_port)]);
    let mut egress = ports(&policy["spec"]["egress"]);
    egress.sort();
    egress.dedup();
    // AMQPS, HTTPS (storage, API server), the API server's other usual
    // port, DNS; nothing in clear.
    assert_eq!(egress, [53, 443, 5671, 6443]);
    // Every rule names its peers, and no address block is wider than a
    // /16: none is open to all, nor to the internet.
    for rules in [&policy["spec"]["ingress"], &policy["spec"]["egress"]] {
        for r in rules.as_sequence().unwrap() {
            let peers = r.get("from").or_else(|| r.get("to")).unwrap();
            assert!(!peers.as_sequence().unwrap().is_empty(), "{r:?}");
            for peer in peers.as_sequence().unwrap() {
                if let Some(cidr) = peer["ipBlock"]["cidr"].as_str() {
                    let bits: u8 = cidr.split('/').nth(1).unwrap().parse().unwrap();
                    assert!(bits >= 16, "{cidr} is too wide");
                }
            }
        }
    }
}

/// A compromised worker serving hostile `/metrics` gets no command run in
/// the sidecar (which holds the pod-patching token) and no odd cost set.
#[test]
fn the_deletion_cost_sidecar_runs_nothing_a_hostile_worker_serves() {
    use std::io::{Read as _, Write as _};
    let dir = tempfile::tempdir().unwrap();
    let pwned = dir.path().join("pwned");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = [
        // Relative paths: the script cuts the value at its first dot.
        "monteur_jobs_in_flight a[$(touch${IFS}pwned)]\n".to_string(),
        "monteur_jobs_in_flight x[`touch${IFS}pwned`]+1\n".to_string(),
        "monteur_jobs_in_flight 99999999999999999999\n".to_string(),
        "monteur_jobs_in_flight 2\n".to_string(),
    ];
    let server = std::thread::spawn(move || {
        for body in bodies.iter().cycle().take(40) {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let _ = write!(s, "HTTP/1.0 200 OK\r\n\r\n{body}");
        }
    });
    let log = dir.path().join("kubectl.log");
    let stub = dir.path().join("kubectl");
    std::fs::write(
        &stub,
        format!("#!/bin/sh\necho \"$@\" >> '{}'\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let docs = documents("worker.yaml");
    let pod = &kind(&docs, "Deployment")["spec"]["template"]["spec"];
    let script = pod["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "deletion-cost")
        .unwrap()["args"][0]
        .as_str()
        .unwrap()
        .to_string();
    let mut sidecar = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir.path())
        .env(
            "PATH",
            format!(
                "{}:{}",
                dir.path().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("POD_NAME", "monteur-worker-abc12")
        .env("METRICS_PORT", port.to_string())
        .env("INTERVAL_S", "0.05")
        .spawn()
        .unwrap();
    // Until the honest value (2 jobs) has been set after the hostile ones.
    let mut costs = Vec::new();
    for _ in 0..100 {
        costs = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split("pod-deletion-cost=").nth(1).map(String::from))
            .collect::<Vec<_>>();
        if costs.iter().any(|c| c == "2000") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = sidecar.kill();
    let _ = sidecar.wait();
    drop(server);
    assert!(
        !pwned.exists(),
        "the sidecar ran a command the worker served"
    );
    assert!(costs.iter().any(|c| c == "2000"), "{costs:?}");
    assert!(costs.iter().all(|c| c == "0" || c == "2000"), "{costs:?}");
}

/// The metric names the worker exposes (with histogram suffixes).
fn exposed() -> Vec<String> {
    let m = Metrics::with_every_family().unwrap();
    String::from_utf8(m.render())
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(String::from)
        .collect()
}

/// The `monteur_*` names a PromQL expression uses.
fn referenced(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("monteur_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        out.push(name);
    }
    out
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("promtool (apt-get install prometheus)");
    assert!(
        out.status.success(),
        "{cmd:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let rule = kind(&documents("alerts.yaml"), "PrometheusRule").clone();
    let groups = &rule["spec"]["groups"];
    let exposed = exposed();
    let mut alerts = 0;
    for g in groups.as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            alerts += 1;
            let expr = r["expr"].as_str().unwrap();
            let names = referenced(expr);
            assert!(!names.is_empty(), "{expr}");
            for n in names {
                assert!(
                    exposed.contains(&n),
                    "alert uses {n}, which the worker does not expose"
                );
            }
        }
    }
    assert!(alerts >= 4);
    // promtool reads plain rule files: the PrometheusRule's groups, as one.
    let dir = tempfile::tempdir().unwrap();
    let mut plain = serde_yaml::Mapping::new();
    plain.insert("groups".into(), groups.clone());
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_yaml::to_string(&plain).unwrap(),
    )
    .unwrap();
    std::fs::copy(
        deploy("alerts.test.yaml"),
        dir.path().join("alerts.test.yaml"),
    )
    .unwrap();
    run(Command::new("promtool")
        .args(["check", "rules", "rules.yaml"])
        .current_dir(dir.path()));
    run(Command::new("promtool")
        .args(["test", "rules", "alerts.test.yaml"])
        .current_dir(dir.path()));
}

#[test]
fn the_dashboard_queries_only_metrics_the_worker_exposes() {
    let text = std::fs::read_to_string(deploy("dashboard.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let exposed = exposed();
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    let mut used = std::collections::BTreeSet::new();
    for p in panels {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for n in referenced(expr) {
                assert!(exposed.contains(&n), "panel `{}` uses {n}", p["title"]);
                used.insert(n);
            }
        }
    }
    // Every documented family appears somewhere on the dashboard.
    let families: std::collections::BTreeSet<String> = exposed
        .iter()
        .map(|n| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .fold(n.clone(), |n, s| {
                    n.strip_suffix(s).map(String::from).unwrap_or(n)
                })
        })
        .collect();
    let shown = |f: &String| used.iter().any(|u| u.starts_with(f.as_str()));
    let missing: Vec<&String> = families.iter().filter(|f| !shown(f)).collect();
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");
}
