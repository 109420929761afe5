//! Fuzzes reading a member's kubeconfig out of a hub Secret: any bytes under
//! the key either give a clear problem or a kubeconfig that can run no
//! program, read no local file and (unless the node allows it) skips no TLS
//! verification, sends no credential over plain HTTP and goes through no proxy:
//! the last two checked on the client configuration that is really built.
//! Nothing panics.

#![no_main]

use std::collections::BTreeMap;

use flowfed::api::SecretKeyRef;
use flowfed::catalog::kubeconfig::{client_config, kubeconfig_in_secret};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let secret_ref = SecretKeyRef {
        namespace: "default".into(),
        name: "member".into(),
        key: "kubeconfig".into(),
    };
    let secret = Secret {
        data: Some(BTreeMap::from([(
            "kubeconfig".to_owned(),
            ByteString(bytes.to_vec()),
        )])),
        ..Default::default()
    };
    let strict = kubeconfig_in_secret(&secret, &secret_ref, "default/member", false);
    let lenient = kubeconfig_in_secret(&secret, &secret_ref, "default/member", true);
    for (outcome, allow_insecure) in [(&strict, false), (&lenient, true)] {
        match outcome {
            Ok(config) => {
                for user in config
                    .auth_infos
                    .iter()
                    .filter_map(|u| u.auth_info.as_ref())
                {
                    assert!(user.exec.is_none(), "exec accepted");
                    assert!(user.auth_provider.is_none(), "auth-provider accepted");
                    assert!(
                        user.client_certificate.is_none()
                            && user.client_key.is_none()
                            && user.token_file.is_none(),
                        "a local credential file accepted"
                    );
                }
                for cluster in config.clusters.iter().filter_map(|c| c.cluster.as_ref()) {
                    assert!(
                        cluster.certificate_authority.is_none(),
                        "a local CA file accepted"
                    );
                    assert!(
                        allow_insecure || cluster.insecure_skip_tls_verify != Some(true),
                        "skipped TLS verification accepted without the node's consent"
                    );
                }
            }
            Err(problem) => {
                assert!(
                    problem.is_configuration(),
                    "{problem:?} blamed on the network"
                );
                assert!(!problem.to_string().is_empty() && !problem.reason().is_empty());
            }
        }
    }
    if let Ok(kubeconfig) = &strict
        && let Ok(config) = futures::executor::block_on(client_config(kubeconfig.clone()))
    {
        assert_eq!(
            config.cluster_url.scheme_str(),
            Some("https"),
            "plain HTTP accepted without the node's consent"
        );
        assert!(
            config.proxy_url.is_none(),
            "a proxy accepted without the node's consent"
        );
    }
    // Allowing insecure transport only ever accepts more.
    assert!(
        strict.is_err() || lenient.is_ok(),
        "allowing more refused more"
    );
});
