//! The Helm chart and the monitoring it ships, checked with the real tools:
//! helm lint and template, the values schema, promtool's rule unit tests, and
//! the copies the chart carries kept equal to their sources.

use std::path::Path;
use std::process::Command;

use flowfed_tests::{repo_root, tool};

fn helm(args: &[&str]) -> std::process::Output {
    Command::new(tool("helm").unwrap())
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn same_files(source: &str, copy: &str) {
    let root = repo_root();
    let mut names: Vec<_> = std::fs::read_dir(root.join(source))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for name in &names {
        let a = std::fs::read(root.join(source).join(name)).unwrap();
        let b = std::fs::read(root.join(copy).join(name)).unwrap_or_default();
        assert!(
            a == b,
            "{copy}/{} differs from {source}/: copy it over",
            name.to_string_lossy()
        );
    }
    let copies = std::fs::read_dir(root.join(copy))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_file())
        .count();
    assert_eq!(copies, names.len(), "{copy} holds files {source} does not");
}

#[test]
fn the_chart_carries_the_current_crds_dashboards_and_rules() {
    same_files("crds", "charts/flowfed/crds");
    same_files("dashboards", "charts/flowfed/files/dashboards");
    let rules = std::fs::read(repo_root().join("alerts/flowfed.rules.yaml")).unwrap();
    assert_eq!(
        rules,
        std::fs::read(repo_root().join("charts/flowfed/files/flowfed.rules.yaml")).unwrap()
    );
}

#[test]
fn helm_lint_and_template_pass_with_default_and_full_values() {
    for extra in [vec![], vec!["-f", "charts/flowfed/ci/full-values.yaml"]] {
        let lint = helm(&[&["lint", "--strict", "charts/flowfed"][..], &extra].concat());
        assert!(lint.status.success(), "{}", text(&lint));
        let rendered = helm(
            &[
                &[
                    "template",
                    "flowfed",
                    "charts/flowfed",
                    "--namespace",
                    "flowfed-system",
                ][..],
                &extra,
            ]
            .concat(),
        );
        assert!(rendered.status.success(), "{}", text(&rendered));
        let yaml = String::from_utf8(rendered.stdout).unwrap();
        for kind in [
            "Deployment",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Service",
            "ConfigMap",
        ] {
            assert!(yaml.contains(&format!("kind: {kind}\n")), "{kind} missing");
        }
        if !extra.is_empty() {
            for kind in ["ServiceMonitor", "PrometheusRule", "NetworkPolicy"] {
                assert!(
                    yaml.contains(&format!("kind: {kind}\n")),
                    "{kind} missing with full values"
                );
            }
        }
    }
}

#[test]
fn the_deployment_meets_the_restricted_pod_security_standard() {
    let rendered = helm(&["template", "flowfed", "charts/flowfed"]);
    let yaml = String::from_utf8(rendered.stdout).unwrap();
    let deployment = serde_yaml::Deserializer::from_str(&yaml)
        .map(|d| <serde_json::Value as serde::Deserialize>::deserialize(d).unwrap())
        .find(|v| v["kind"] == "Deployment")
        .unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(container["resources"]["requests"]["memory"].is_string());
}

#[test]
fn bad_values_are_rejected_with_a_message_naming_the_value() {
    let cases = [
        (vec!["--set", "replicaCount=9"], "/replicaCount"),
        (
            vec![
                "--set",
                "replicaCount=2",
                "--set",
                "leaderElection.enabled=false",
            ],
            "/replicaCount",
        ),
        (
            vec!["--set", "operator.logFormat=xml"],
            "/operator/logFormat",
        ),
        (vec!["--set", "operator.httpPort=80"], "/operator/httpPort"),
        (
            vec!["--set", "metrics.serviceMonitor.interval=often"],
            "/metrics/serviceMonitor/interval",
        ),
        (
            vec!["--set", "memberClusters.secretNamespace=Bad_NS"],
            "/memberClusters/secretNamespace",
        ),
        (
            vec!["--set", "imageTypo.tag=1"],
            "additional properties 'imageTypo' not allowed",
        ),
    ];
    for (args, fragment) in cases {
        let out = helm(&[&["template", "flowfed", "charts/flowfed"][..], &args].concat());
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(text(&out).contains(fragment), "{args:?}: {}", text(&out));
    }
}

#[test]
fn rbac_has_no_wildcards_and_no_privilege_verbs() {
    let rendered = helm(&[
        "template",
        "flowfed",
        "charts/flowfed",
        "-f",
        "charts/flowfed/ci/full-values.yaml",
    ]);
    let yaml = String::from_utf8(rendered.stdout).unwrap();
    for doc in serde_yaml::Deserializer::from_str(&yaml) {
        let v = <serde_json::Value as serde::Deserialize>::deserialize(doc).unwrap();
        if !matches!(v["kind"].as_str(), Some("ClusterRole" | "Role")) {
            continue;
        }
        for rule in v["rules"].as_array().unwrap() {
            for field in ["apiGroups", "resources", "verbs"] {
                let values: Vec<&str> = rule[field]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap())
                    .collect();
                assert!(
                    !values.contains(&"*"),
                    "wildcard in {} {field}",
                    v["metadata"]["name"]
                );
                if field == "verbs" {
                    for verb in ["escalate", "bind", "impersonate"] {
                        assert!(
                            !values.contains(&verb),
                            "{verb} in {}",
                            v["metadata"]["name"]
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn alert_rules_pass_promtool_unit_tests() {
    let alerts = Path::new(&repo_root()).join("alerts");
    let check = Command::new("promtool")
        .args(["check", "rules", "flowfed.rules.yaml"])
        .current_dir(&alerts)
        .output()
        .expect("promtool installed");
    assert!(check.status.success(), "{}", text(&check));
    let test = Command::new("promtool")
        .args(["test", "rules", "flowfed.rules.test.yaml"])
        .current_dir(&alerts)
        .output()
        .unwrap();
    assert!(test.status.success(), "{}", text(&test));
}
