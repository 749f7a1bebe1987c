//! The deployment files (deploy/): they parse, the Kubernetes objects carry
//! what a cluster needs, and every metric the alerts and the dashboard use
//! is one the server exports.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use crate::helpers::{Backend, TestApp};

fn read(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn yaml(path: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `tandem_*` names in a text, as a PromQL expression or JSON uses them.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in text.match_indices("tandem_") {
        let rest = &text[i..];
        let end = rest
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()))
            .unwrap_or(rest.len());
        names.insert(rest[..end].to_owned());
    }
    names
}

#[test]
fn kubernetes_objects_are_complete() {
    let docs = yaml("deploy/kubernetes/tandem.yaml");
    let kinds: BTreeSet<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for kind in [
        "ConfigMap",
        "Secret",
        "StatefulSet",
        "Service",
        "PodDisruptionBudget",
    ] {
        assert!(kinds.contains(kind), "no {kind}: {kinds:?}");
    }
    for d in &docs {
        assert!(d["apiVersion"].as_str().is_some(), "{d:?}");
        assert!(d["metadata"]["name"].as_str().is_some(), "{d:?}");
    }
    let set = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("StatefulSet"))
        .unwrap();
    let c = &set["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/ready")
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/health")
    );
    // Each node its own id: from the pod index.
    let env = c["env"].as_vec().unwrap();
    assert!(env
        .iter()
        .any(|e| e["name"].as_str() == Some("TANDEM_NODE_ID")
            && e["valueFrom"]["fieldRef"]["fieldPath"]
                .as_str()
                .is_some_and(|p| p.contains("pod-index"))));
    assert!(set["spec"]["replicas"].as_i64().unwrap() >= 2);
}

#[test]
fn compose_runs_three_nodes_with_their_own_ids() {
    let text = read("deploy/compose.yaml");
    let doc = &yaml("deploy/compose.yaml")[0];
    let services = doc["services"].as_hash().unwrap();
    for s in [
        "postgres", "redis", "rabbitmq", "lb", "tandem-0", "tandem-1", "tandem-2",
    ] {
        assert!(services.contains_key(&Yaml::String(s.into())), "no {s}");
    }
    for id in 0..3 {
        assert!(
            text.contains(&format!("TANDEM_NODE_ID: \"{id}\"")),
            "node {id}"
        );
    }
    // nginx upgrades WebSockets and knows every node.
    let nginx = read("deploy/nginx.conf");
    assert!(nginx.contains("proxy_set_header Upgrade $http_upgrade"));
    for id in 0..3 {
        assert!(nginx.contains(&format!("server tandem-{id}:8080")));
    }
}

/// Every metric in the alert rules and the dashboard is exported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_and_dashboard_use_exported_metrics() {
    let prometheus = &yaml("deploy/prometheus/prometheus.yml")[0];
    assert_eq!(
        prometheus["rule_files"][0].as_str(),
        Some("alerts.yml"),
        "the scrape config loads the rules"
    );
    let alerts = &yaml("deploy/prometheus/alerts.yml")[0];
    let rules = alerts["groups"][0]["rules"].as_vec().unwrap();
    assert!(rules.len() >= 5);
    let mut used = BTreeSet::new();
    for r in rules {
        assert!(r["alert"].as_str().is_some() && r["annotations"]["summary"].as_str().is_some());
        used.extend(metric_names(r["expr"].as_str().unwrap()));
    }
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/tandem.json")).unwrap();
    for p in dashboard["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            used.extend(metric_names(t["expr"].as_str().unwrap()));
        }
    }
    // The node link's metrics exist only where there is a link (RabbitMQ).
    let app = if crate::helpers::postgres_configured() {
        TestApp::spawn(Backend::Postgres).await
    } else {
        eprintln!("TANDEM_TEST_DATABASE_URL not set: the node link's metrics not checked");
        used.retain(|m| !m.starts_with("tandem_node_link_"));
        TestApp::spawn(Backend::Sqlite).await
    };
    // Request histograms appear with the first request they measured.
    assert_eq!(app.get("/health", None).await.status(), 200);
    let exported = metric_names(&app.get("/metrics", None).await.text().await.unwrap());
    let missing: Vec<&String> = used.difference(&exported).collect();
    assert!(missing.is_empty(), "not exported: {missing:?}");
}
