//! Docker inside jobs: a pool with `docker = "sidecar"` gives each runner a
//! private Docker engine, in a container created before it and removed
//! after it. The engines run the image built by
//! `scripts/ensure-dind-image.sh` with the explicit capability set
//! (`docker_privileged = false`): this host refuses `--privileged`.

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use test_support::{TestDocker, dind, ensure_base_image, ensure_dind_image, unique_id, wait_for};

use crate::helpers::{Options, TestEnv};

/// A pools file of the test's own, removed on drop.
struct PoolsFile {
    path: std::path::PathBuf,
}

impl PoolsFile {
    fn new(text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("gha-pools-{}.toml", unique_id()));
        std::fs::write(&path, text).unwrap();
        Self { path }
    }
}

impl Drop for PoolsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Two pools: `plain` without Docker, `docker` with an engine per runner.
fn two_pools() -> String {
    format!(
        r#"
[[pool]]
name = "plain"
labels = ["self-hosted", "linux", "x64"]
max = 4

[[pool]]
name = "docker"
labels = ["self-hosted", "linux", "x64", "docker"]
docker = "sidecar"
docker_image = "{}"
docker_privileged = false
docker_registry_mirror = "http://registry-mirror.invalid:5000"
max = 4
"#,
        ensure_dind_image()
    )
}

async fn start(file: &PoolsFile) -> TestEnv {
    TestEnv::start_with(Options {
        env: vec![("RUNNER_POOLS_FILE", file.path.display().to_string())],
        webhooks: true,
        ..Options::default()
    })
    .await
}

/// Creates `count` runners of pool `pool` through the API; their names.
async fn create_in(env: &TestEnv, pool: &str, count: u32) -> Vec<String> {
    env.create_with(json!({"count": count, "pool": pool})).await
}

/// Containers and volumes of runner `runner`'s engine that exist.
fn engine_leftovers(runner: &str) -> (Vec<String>, Vec<String>) {
    dind::labelled(&format!("dev.gha-runners.engine-of={runner}"))
}

/// Every engine volume of this test's orchestrator.
fn engine_volumes(env: &TestEnv) -> Vec<String> {
    let out = Command::new("docker")
        .args(["volume", "ls", "-q", "--filter"])
        .arg(format!("label=dev.gha-runners.instance={}", env.docker.id))
        .args(["--filter", "label=dev.gha-runners.engine-of"])
        .output()
        .expect("docker CLI");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Runs `script` with bash in container `container` as its own user;
/// (exit status, stdout and stderr).
fn exec(container: &str, script: &str) -> (bool, String) {
    let out = Command::new("docker")
        .args(["exec", container, "bash", "-c", script])
        .output()
        .expect("docker CLI");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Waits until neither runner containers, engines nor their volumes of this
/// test remain.
async fn wait_all_gone(env: &TestEnv) {
    env.wait_nothing_left(Duration::from_secs(60)).await;
    wait_for("no engine volume left", Duration::from_secs(30), || async {
        engine_volumes(env).is_empty().then_some(())
    })
    .await;
}

/// Queues a job that runs `script` on a runner with `labels`; its id.
async fn queue_script(env: &TestEnv, labels: &[&str], script: &str) -> i64 {
    let (status, body) = env
        .sim_post(
            "/_sim/jobs",
            json!({"repository": crate::helpers::REPO, "labels": labels, "run": script}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_uses_its_runners_own_docker_engine_and_nothing_outlives_it() {
    let base = ensure_base_image();
    let file = PoolsFile::new(&two_pools());
    let env = start(&file).await;

    // `/pools` and `/health` say which pool has Docker.
    let (_, pools) = env.get("/pools").await;
    let docker_pool = pools["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "docker")
        .unwrap()
        .clone();
    assert_eq!(docker_pool["docker"]["mode"], "sidecar", "{docker_pool}");
    assert_eq!(docker_pool["docker"]["privileged"], false);
    let (_, health) = env.get("/health").await;
    assert_eq!(health["pools"]["docker"]["docker"], "sidecar", "{health}");
    assert_eq!(health["pools"]["docker"]["plain"], "none", "{health}");

    let plain = create_in(&env, "plain", 1).await.remove(0);
    let runner = create_in(&env, "docker", 1).await.remove(0);
    let engine = format!("{runner}-docker");

    // A pool without Docker is unchanged: no engine, no mounts, no DOCKER_HOST.
    let inspect = TestDocker::inspect(&plain).unwrap();
    assert_eq!(engine_leftovers(&plain), (vec![], vec![]));
    assert_eq!(inspect["Mounts"], json!([]), "{inspect}");
    assert!(!inspect["Config"]["Env"].to_string().contains("DOCKER_HOST"));

    // The runner: unprivileged, in its engine's network namespace, with the
    // engine's socket and the work directory, never the host's socket.
    let inspect = TestDocker::inspect(&runner).unwrap();
    let host = &inspect["HostConfig"];
    assert_eq!(host["Privileged"], false);
    assert!(
        host["NetworkMode"]
            .as_str()
            .unwrap()
            .starts_with("container:"),
        "{host}"
    );
    let mounts: Vec<(String, String)> = inspect["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["Name"].as_str().unwrap_or("").to_owned(),
                m["Destination"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        mounts.len(),
        3,
        "only the socket's, the work directory's and the externals' volumes: {mounts:?}"
    );
    assert!(mounts.contains(&(format!("{runner}-work"), "/home/runner/_work".into())));
    assert!(mounts.contains(&(format!("{runner}-docker-socket"), "/run/gha-docker".into())));
    assert!(
        inspect["Config"]["Env"]
            .to_string()
            .contains("DOCKER_HOST=unix:///run/gha-docker/docker.sock")
    );
    // The engine: labelled with its runner, the explicit rights, no TCP port.
    let engine_inspect = TestDocker::inspect(&engine).unwrap();
    assert_eq!(
        engine_inspect["Config"]["Labels"]["dev.gha-runners.engine-of"],
        runner.as_str()
    );
    assert_eq!(engine_inspect["HostConfig"]["Privileged"], false);
    assert_eq!(engine_inspect["HostConfig"]["CapAdd"], json!(["ALL"]));
    assert_eq!(engine_inspect["NetworkSettings"]["Ports"], json!({}));
    // The pool's registry mirror is the engine's.
    let mirrors = Command::new("docker")
        .args([
            "exec",
            &engine,
            "docker",
            "info",
            "-f",
            "{{.RegistryConfig.Mirrors}}",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&mirrors.stdout).contains("registry-mirror.invalid:5000"),
        "{mirrors:?}"
    );
    let volumes = engine_volumes(&env);
    assert_eq!(volumes.len(), 4, "{volumes:?}");

    // Isolation: no host socket in the runner, no orchestrator on its
    // localhost (its localhost is the engine's), and the engine has no TCP
    // port another runner could reach.
    let (no_host_socket, out) = exec(&runner, "test ! -e /var/run/docker.sock");
    assert!(no_host_socket, "{out}");
    let orchestrator_port = env.base.rsplit(':').next().unwrap().to_owned();
    let (reached, _) = exec(
        &runner,
        &format!("timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{orchestrator_port}'"),
    );
    assert!(!reached, "the runner reached the orchestrator's port");
    let engine_ip = engine_inspect["NetworkSettings"]["Networks"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()["IPAddress"]
        .as_str()
        .unwrap()
        .to_owned();
    let (reached, _) = exec(
        &plain,
        &format!(
            "timeout 3 bash -c 'exec 3<>/dev/tcp/{engine_ip}/2375' || timeout 3 bash -c 'exec 3<>/dev/tcp/{engine_ip}/2376'"
        ),
    );
    assert!(!reached, "another runner reached the engine over TCP");

    // A small image in the inner engine (there is no registry), then a job
    // whose steps use it: a container, a file at the same path, a service
    // on localhost, and what the inner engine can see.
    env.wait_state(&runner, "idle", Duration::from_secs(60))
        .await;
    dind::load_image(&engine, base);
    let listener = r#"$s = IO::Socket::INET->new(LocalPort => 8089, Listen => 5, ReuseAddr => 1) or die $!; while ($c = $s->accept) { print $c "hello from the service\n"; close $c }"#;
    let script = format!(
        r#"
docker run --rm {base} echo "inner container says hello"
echo "written by the runner" > "$GITHUB_WORKSPACE/shared.txt"
docker run --rm -v "$GITHUB_WORKSPACE:$GITHUB_WORKSPACE" {base} cat "$GITHUB_WORKSPACE/shared.txt"
docker run -d --name service -p 8089:8089 {base} perl -MIO::Socket::INET -e '{listener}'
for i in $(seq 1 100); do
  # The published port accepts before the service listens: wait for words.
  answer=$(exec 3<>/dev/tcp/127.0.0.1/8089 && cat <&3) || true
  if [ -n "$answer" ]; then break; fi
  sleep 0.2
done
echo "service answered: $answer"
echo "inner containers: $(docker ps -a --format '{{{{.Names}}}}' | tr '\n' ' ')"
docker run --rm {base} bash -c 'test -e /var/run/docker.sock && echo "inner sees a socket" || echo "inner sees no socket"'
# What the runner mounts into a container: job: its externals and the
# engine's default socket, at paths of the engine's own.
docker run --rm -v /home/runner/externals:/__e:ro {base} cat /__e/README
docker run --rm -v /var/run/docker.sock:/var/run/docker.sock {base} bash -c 'test -S /var/run/docker.sock && echo "job container has the engine socket"'
"#
    );
    let job = queue_script(&env, &["docker"], &script).await;
    let done = env.wait_job_completed(job, Duration::from_secs(120)).await;
    let log = done["log"].as_str().unwrap_or_default().to_owned();
    assert_eq!(done["conclusion"], "success", "{done}");
    assert_eq!(done["runner_name"], runner.as_str());
    assert!(log.contains("inner container says hello"), "{log}");
    assert!(log.contains("written by the runner"), "{log}");
    assert!(
        log.contains("service answered: hello from the service"),
        "{log}"
    );
    // The inner engine sees its own containers only: not the runner, not
    // its engine, nothing of the host's.
    let inner = log
        .lines()
        .find_map(|l| l.strip_prefix("inner containers: "))
        .unwrap_or_default();
    assert_eq!(
        inner.split_whitespace().collect::<Vec<_>>(),
        ["service"],
        "{log}"
    );
    assert!(log.contains("inner sees no socket"), "{log}");
    assert!(log.contains("the runner stand-in's externals"), "{log}");
    assert!(log.contains("job container has the engine socket"), "{log}");

    // The job's end removes the runner, then its engine and its volumes.
    wait_for(
        "the runner and its engine to go",
        Duration::from_secs(60),
        || async {
            (engine_leftovers(&runner) == (vec![], vec![])
                && TestDocker::inspect(&runner).is_none())
            .then_some(())
        },
    )
    .await;

    // A delete removes the engine with its runner.
    let deleted = create_in(&env, "docker", 1).await.remove(0);
    assert_eq!(engine_leftovers(&deleted).0.len(), 1);
    let (status, body) = env.delete(&format!("/runners/{deleted}")).await;
    assert!(status == 200 || status == 204, "{body}");
    assert_eq!(engine_leftovers(&deleted), (vec![], vec![]));

    let (status, body) = env.delete(&format!("/runners/{plain}")).await;
    assert!(status == 200 || status == 204, "{body}");
    wait_all_gone(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_killed_from_outside_takes_its_runner_with_it() {
    let file = PoolsFile::new(&two_pools());
    let env = start(&file).await;
    let runners = create_in(&env, "docker", 2).await;
    for runner in &runners {
        env.wait_state(runner, "idle", Duration::from_secs(60))
            .await;
    }
    // One runner takes a long job; its engine is killed mid-job.
    let job = env.queue_job(&["docker"], 600_000).await;
    let busy = wait_for("the job to start", Duration::from_secs(40), || async {
        env.job(job).await["runner_name"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    env.wait_state(&busy, "busy", Duration::from_secs(30)).await;
    let idle = runners.iter().find(|r| **r != busy).unwrap().clone();
    for runner in [&busy, &idle] {
        let killed = Command::new("docker")
            .args(["kill", &format!("{runner}-docker")])
            .output()
            .unwrap();
        assert!(killed.status.success());
    }
    for runner in [&busy, &idle] {
        wait_for(
            &format!("runner {runner} and its engine to be removed"),
            Duration::from_secs(60),
            || async {
                (TestDocker::inspect(runner).is_none()
                    && engine_leftovers(runner) == (vec![], vec![]))
                    .then_some(())
            },
        )
        .await;
    }
    // The busy one is reported failed, with why; the idle one is not.
    let (_, shown) = env.get(&format!("/runners/{busy}/status")).await;
    let reason = shown["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("Docker engine stopped") && reason.contains("job failed"),
        "{shown}"
    );
    let metrics = env
        .http
        .get(format!("{}/metrics", env.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"gha_runner_failures_total{pool="docker",reason="docker_engine"} 1"#),
        "{metrics}"
    );
    wait_all_gone(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_burst_leaves_no_engine_without_its_runner() {
    let file = PoolsFile::new(&two_pools());
    let mut env = start(&file).await;
    // A burst of four, killed once the first engines exist and before
    // every runner does.
    let request = {
        let http = env.http.clone();
        let url = format!("{}/runners/create", env.base);
        tokio::spawn(async move {
            let _ = http
                .post(url)
                .json(&json!({"count": 4, "pool": "docker"}))
                .send()
                .await;
        })
    };
    let engines_filter = format!("label=dev.gha-runners.instance={}", env.docker.id);
    wait_for(
        "the first engine containers",
        Duration::from_secs(60),
        || {
            let out = Command::new("docker")
                .args(["ps", "-a", "-q", "--filter", &engines_filter])
                .args(["--filter", "label=dev.gha-runners.engine-of"])
                .output()
                .unwrap();
            let count = String::from_utf8_lossy(&out.stdout).lines().count();
            async move { (count >= 1).then_some(()) }
        },
    )
    .await;
    env.kill_orchestrator();
    let _ = request.await;

    // Restarted, a pass later: every engine has its runner and every
    // runner its engine.
    env.start_orchestrator().await;
    env.wait_passes("reconcile", 2).await;
    wait_for(
        "engines and runners to match",
        Duration::from_secs(60),
        || async {
            let (_, listed) = env.get("/runners").await;
            let runners: Vec<String> = listed["runners"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|r| r["state"] != "removing")
                        .map(|r| r["id"].as_str().unwrap().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            let containers = env.containers();
            let engines: Vec<&String> = containers
                .iter()
                .filter(|c| c.ends_with("-docker"))
                .collect();
            let matched = engines.len() == runners.len()
                && runners
                    .iter()
                    .all(|r| containers.contains(&format!("{r}-docker")))
                && engine_volumes(&env).len() == 4 * runners.len();
            matched.then_some(())
        },
    )
    .await;
    // Then removed, they leave nothing.
    let (_, listed) = env.get("/runners").await;
    for runner in listed["runners"].as_array().unwrap() {
        let id = runner["id"].as_str().unwrap();
        let _ = env.delete(&format!("/runners/{id}?force=true")).await;
    }
    wait_all_gone(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_removes_idle_engines_and_an_absent_engine_image_stops_the_start() {
    let file = PoolsFile::new(&two_pools());
    let mut env = start(&file).await;
    let runner = create_in(&env, "docker", 1).await.remove(0);
    env.wait_state(&runner, "idle", Duration::from_secs(60))
        .await;
    assert_eq!(engine_leftovers(&runner).1.len(), 4);
    // A clean stop removes idle runners, and their engines with them.
    env.terminate_orchestrator().await;
    assert_eq!(engine_leftovers(&runner), (vec![], vec![]));
    assert!(TestDocker::inspect(&runner).is_none());

    // An engine image that is neither present nor pullable stops the start.
    let absent = format!("gha-test-absent-engine:{}", unique_id());
    let bad = PoolsFile::new(&two_pools().replace(ensure_dind_image(), &absent));
    let mut command = env.orchestrator_command(crate::helpers::free_port());
    command
        .env("RUNNER_POOLS_FILE", &bad.path)
        .env("ORCHESTRATOR_ID", format!("{}-bad", env.docker.id));
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr).to_string()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains(&absent) && said.contains("could not be pulled"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_cannot_start_fails_the_create_and_leaves_nothing() {
    // This host refuses `--privileged`, the default: the create fails with
    // Docker's reason, and nothing of it stays (no registration, no
    // container, no volume).
    let file = PoolsFile::new(&two_pools().replace("docker_privileged = false\n", ""));
    let env = start(&file).await;
    let (status, body) = env
        .post("/runners/create", json!({"count": 2, "pool": "docker"}))
        .await;
    assert_eq!(status, 502, "{body}");
    let code = body["error"]["code"].as_str().unwrap();
    assert!(
        code == "docker_error" || code == "docker_engine_failed",
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rolled back"),
        "{body}"
    );
    assert!(env.containers().is_empty(), "{:?}", env.containers());
    assert!(
        engine_volumes(&env).is_empty(),
        "{:?}",
        engine_volumes(&env)
    );
    assert!(env.registrations().await.is_empty());
}
