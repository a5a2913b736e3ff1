//! `[executors.NAME] kind = "kubernetes"` through the binary: `baton run` sends a container
//! task to the cluster its kubeconfig names (the engine's fake API server, on loopback) and
//! passes its outputs on; a bad setting is refused naming the key.

#[path = "../../engine/tests/support/kube_fake.rs"]
mod kube_fake;
mod support;

use kube_fake::FakeCluster;
use support::Test;

#[test]
fn baton_run_sends_a_container_task_to_the_cluster_of_baton_toml() {
    let fake = FakeCluster::start_blocking();
    let t = Test::new()
        .file(
            "baton.toml",
            &format!(
                "[executors.k8s]\nkind = \"kubernetes\"\nkubeconfig = \"{}\"\nservice_account = \"tasks\"\n",
                fake.kubeconfig.display()
            ),
        )
        .file(
            "p.yaml",
            "name: p\ntasks:\n  remote:\n    executor: k8s\n    container: { image: \"busybox:1.36\" }\n    outputs: [greeting]\n    run: |\n      echo \"hello from $HOSTNAME\"\n      echo greeting=hi >> \"$BATON_OUTPUTS\"\n  here:\n    needs: [remote]\n    run: echo \"{{ tasks.remote.outputs.greeting }}\" > got.txt\n",
        );
    let out = t.run(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(t.read("got.txt"), "hi\n");
    let created = fake.created();
    assert_eq!(created.len(), 1, "{created:#?}");
    let job = &created[0];
    assert_eq!(job["metadata"]["labels"]["baton.dev/executor"], "k8s");
    assert_eq!(job["metadata"]["labels"]["baton.dev/task"], "remote");
    assert_eq!(
        job["spec"]["template"]["spec"]["serviceAccountName"],
        "tasks"
    );
    assert!(fake.jobs().is_empty(), "{:?}", fake.jobs());
    let id = t.last_run();
    let logs = t.run(&["logs", &id, "remote"]);
    assert!(
        logs.stdout.contains("hello from baton-"),
        "{}\n{}",
        logs.stdout,
        logs.stderr
    );
}

#[test]
fn a_bad_kubernetes_setting_is_refused_naming_the_key() {
    let t = Test::new()
        .file(
            "baton.toml",
            "[executors.k8s]\nkind = \"kubernetes\"\non_finish = \"sometimes\"\n",
        )
        .file("p.yaml", "name: p\ntasks:\n  t:\n    run: \"true\"\n");
    let out = t.run(&["run", "p.yaml"]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("`sometimes` is not an `on_finish`: use `delete`, `keep_failed` or `keep`"),
        "{}",
        out.stderr
    );
    let t = Test::new()
        .file(
            "baton.toml",
            "[executors.k8s]\nkind = \"kubernetes\"\nnamespace = \"Team A\"\n",
        )
        .file("p.yaml", "name: p\ntasks:\n  t:\n    run: \"true\"\n");
    let out = t.run(&["run", "p.yaml"]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("[executors.k8s] `namespace` `Team A` is not a Kubernetes name"),
        "{}",
        out.stderr
    );
}
