//! Lease-based leader election against the fake API server: one leader at a time, takeover
//! after expiry, and a stale writer loses with 409.

mod fake_apiserver;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kaito_k8s::controller::leader::LeaderElector;
use kube::Api;

#[tokio::test]
async fn one_leader_at_a_time_and_takeover_after_expiry() {
    let server = fake_apiserver::FakeApiServer::start().await;
    let api: Api<Lease> = Api::namespaced(server.client(), "kaito-system");
    let a = LeaderElector::new(
        api.clone(),
        "kaito-rs-controller",
        "pod-a",
        Duration::from_secs(3),
    );
    let b = LeaderElector::new(
        api.clone(),
        "kaito-rs-controller",
        "pod-b",
        Duration::from_secs(3),
    );
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "b must not lead while a's lease is fresh"
    );
    assert!(a.try_acquire_or_renew().await.unwrap(), "a renews");
    tokio::time::sleep(Duration::from_millis(6300)).await;
    assert!(
        b.try_acquire_or_renew().await.unwrap(),
        "b takes over an expired lease"
    );
    assert!(!a.try_acquire_or_renew().await.unwrap(), "a lost the lease");
    let lease = api.get("kaito-rs-controller").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("pod-b"));
    assert_eq!(spec.lease_transitions, Some(1));
}

#[tokio::test]
async fn a_stale_write_gets_409() {
    let server = fake_apiserver::FakeApiServer::start().await;
    let api: Api<Lease> = Api::namespaced(server.client(), "kaito-system");
    let a = LeaderElector::new(api.clone(), "l", "pod-a", Duration::from_secs(15));
    assert!(a.try_acquire_or_renew().await.unwrap());
    let stale = api.get("l").await.unwrap();
    assert!(a.try_acquire_or_renew().await.unwrap()); // bumps resourceVersion
    let err = api
        .replace("l", &Default::default(), &stale)
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 409));
}
