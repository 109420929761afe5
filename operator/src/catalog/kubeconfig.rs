//! Member kubeconfigs, checked before anything connects: a kubeconfig that
//! would run a program (`exec`, `auth-provider`), read local files, skip TLS
//! verification, send credentials over plain HTTP or through a proxy is
//! refused (the last three unless the node allows insecure member transport).
//! Problems never quote the Secret's text: they reach tenants' conditions.

use k8s_openapi::api::core::v1::Secret;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::member::MemberProblem;
use crate::api::SecretKeyRef;

/// Parses a kubeconfig and refuses anything that could run a program, read a
/// local file, or (unless `allow_insecure`) skip TLS verification, send the
/// credentials over plain HTTP or route member traffic through a proxy.
///
/// Problems name the user or cluster and the kind of problem only: they end up
/// in conditions that tenants read, and a parser's message can quote the
/// offending value, which may be a token.
pub fn check_kubeconfig(yaml: &str, allow_insecure: bool) -> Result<Kubeconfig, MemberProblem> {
    let config = Kubeconfig::from_yaml(yaml).map_err(|_| {
        MemberProblem::InvalidKubeconfig(match serde_yaml::from_str::<serde_yaml::Value>(yaml) {
            Err(e) => match e.location() {
                Some(at) => format!("not YAML (line {}, column {})", at.line(), at.column()),
                None => "not YAML".into(),
            },
            Ok(_) => "YAML, but not a kubeconfig (a field has the wrong type or shape)".into(),
        })
    })?;
    let refuse = |what: String| Err(MemberProblem::RefusedKubeconfig(what));
    for named in &config.auth_infos {
        let Some(auth) = &named.auth_info else {
            continue;
        };
        let user = &named.name;
        if auth.exec.is_some() {
            return refuse(format!(
                "user {user} uses exec (a kubeconfig in a Secret must not run programs)"
            ));
        }
        if auth.auth_provider.is_some() {
            return refuse(format!("user {user} uses auth-provider"));
        }
        if auth.client_certificate.is_some()
            || auth.client_key.is_some()
            || auth.token_file.is_some()
        {
            return refuse(format!(
                "user {user} reads local files; embed client-certificate-data, client-key-data or token"
            ));
        }
    }
    for named in &config.clusters {
        let Some(cluster) = &named.cluster else {
            continue;
        };
        if cluster.certificate_authority.is_some() {
            return refuse(format!(
                "cluster {} reads a local CA file; embed certificate-authority-data",
                named.name
            ));
        }
        if cluster.insecure_skip_tls_verify == Some(true) && !allow_insecure {
            return refuse(format!(
                "cluster {} sets insecure-skip-tls-verify; set spec.catalog.allowInsecureMemberTls on the node to accept it",
                named.name
            ));
        }
        let plain_http = cluster
            .server
            .as_deref()
            .is_some_and(|server| !server.trim().to_ascii_lowercase().starts_with("https://"));
        if plain_http && !allow_insecure {
            return refuse(format!(
                "cluster {} has a server that is not https:// (the credentials would cross the network in clear text); set spec.catalog.allowInsecureMemberTls on the node to accept it",
                named.name
            ));
        }
        if cluster.proxy_url.is_some() && !allow_insecure {
            return refuse(format!(
                "cluster {} sets proxy-url (every member request would go through that proxy); set spec.catalog.allowInsecureMemberTls on the node to accept it",
                named.name
            ));
        }
    }
    if config.current_context.is_none() && config.contexts.len() != 1 {
        return Err(MemberProblem::InvalidKubeconfig(
            "no current-context".into(),
        ));
    }
    Ok(config)
}

/// The checked kubeconfig under `secret_ref.key` of `secret` (in `data`, or in
/// `stringData` as written by hand). `secret_name` names it in problems.
pub fn kubeconfig_in_secret(
    secret: &Secret,
    secret_ref: &SecretKeyRef,
    secret_name: &str,
    allow_insecure: bool,
) -> Result<Kubeconfig, MemberProblem> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&secret_ref.key))
        .map(|b| b.0.as_slice())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(&secret_ref.key))
                .map(|s| s.as_bytes())
        })
        .ok_or_else(|| MemberProblem::KeyMissing {
            secret: secret_name.to_owned(),
            key: secret_ref.key.clone(),
        })?;
    let yaml = std::str::from_utf8(bytes)
        .map_err(|_| MemberProblem::InvalidKubeconfig("not UTF-8 text".into()))?;
    check_kubeconfig(yaml, allow_insecure)
}

/// The client configuration a checked kubeconfig gives (what `build` connects
/// with; the tests and the fuzz target check this, not the kubeconfig's fields).
pub async fn client_config(kubeconfig: Kubeconfig) -> Result<kube::Config, MemberProblem> {
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|_| {
            MemberProblem::InvalidKubeconfig(
                "its current context, cluster or user cannot be resolved, or its embedded data is not valid".into(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(user: &str, cluster_extra: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n{cluster_extra}\nusers:\n- name: u\n  user:\n{user}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
        )
    }

    #[test]
    fn embedded_credentials_are_accepted() {
        let yaml = kubeconfig("    token: abc", "    certificate-authority-data: Zm9v");
        assert!(check_kubeconfig(&yaml, false).is_ok());
    }

    #[test]
    fn programs_files_and_skipped_verification_are_refused() {
        let cases = [
            (
                kubeconfig(
                    "    exec:\n      command: /bin/sh\n      apiVersion: client.authentication.k8s.io/v1",
                    "",
                ),
                "exec",
            ),
            (
                kubeconfig("    auth-provider:\n      name: gcp", ""),
                "auth-provider",
            ),
            (
                kubeconfig(
                    "    client-certificate: /etc/cert.pem\n    client-key: /etc/key.pem",
                    "",
                ),
                "local files",
            ),
            (
                kubeconfig("    tokenFile: /var/run/token", ""),
                "local files",
            ),
            (
                kubeconfig("    token: abc", "    certificate-authority: /etc/ca.pem"),
                "local CA file",
            ),
            (
                kubeconfig("    token: abc", "    insecure-skip-tls-verify: true"),
                "insecure-skip-tls-verify",
            ),
        ];
        for (yaml, fragment) in cases {
            match check_kubeconfig(&yaml, false) {
                Err(MemberProblem::RefusedKubeconfig(message)) => {
                    assert!(message.contains(fragment), "{message}")
                }
                other => panic!(
                    "expected refusal mentioning {fragment}, got {:?}",
                    other.map(|_| ())
                ),
            }
        }
        let insecure = kubeconfig("    token: abc", "    insecure-skip-tls-verify: true");
        assert!(
            check_kubeconfig(&insecure, true).is_ok(),
            "allowed explicitly by the node"
        );
    }

    /// The transport a member client would use, read from the client
    /// configuration that is really built, not from the kubeconfig's fields.
    async fn transport(yaml: &str, allow_insecure: bool) -> Result<(String, bool), MemberProblem> {
        let config = client_config(check_kubeconfig(yaml, allow_insecure)?).await?;
        Ok((
            config
                .cluster_url
                .scheme_str()
                .unwrap_or_default()
                .to_owned(),
            config.proxy_url.is_some(),
        ))
    }

    #[tokio::test]
    async fn member_kubeconfigs_with_http_or_a_proxy_are_refused_unless_the_node_allows_it() {
        let https = kubeconfig("    token: abc", "");
        assert_eq!(
            transport(&https, false).await.unwrap(),
            ("https".into(), false)
        );
        for (yaml, fragment) in [
            (https.replace("https://", "http://"), "not https://"),
            (https.replace("https://", "HTTP://"), "not https://"),
            (
                kubeconfig("    token: abc", "    proxy-url: http://127.0.0.1:3128"),
                "proxy-url",
            ),
        ] {
            match transport(&yaml, false).await {
                Err(MemberProblem::RefusedKubeconfig(message)) => {
                    assert!(message.contains(fragment), "{message}")
                }
                other => panic!("{yaml}: expected a refusal, got {other:?}"),
            }
            assert!(
                transport(&yaml, true).await.is_ok(),
                "allowed explicitly by the node: {yaml}"
            );
        }
    }

    #[test]
    fn kubeconfig_problems_never_quote_the_secret_text() {
        let token = "s3cr3t-t0ken-value";
        for yaml in [
            // A token where a list belongs, a token in broken YAML, a token as a key.
            format!("apiVersion: v1\nkind: Config\nusers: {token}"),
            format!(
                "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user: {{token: \"{token}\"\n"
            ),
            format!("{token}: [\n"),
            kubeconfig(
                &format!("    token: {token}\n    client-certificate-data: [{token}]"),
                "",
            ),
        ] {
            let problem = check_kubeconfig(&yaml, false).expect_err("not a usable kubeconfig");
            assert!(!problem.to_string().contains(token), "{problem}");
            assert!(!problem.to_string().contains("t0ken"), "{problem}");
        }
    }

    #[test]
    fn garbage_is_invalid_not_a_panic() {
        for text in [
            "",
            "{",
            "apiVersion: v1\nkind: Config\nusers: 7",
            "\u{0}\u{1}",
        ] {
            assert!(check_kubeconfig(text, false).is_err(), "{text:?} accepted");
        }
    }
}
