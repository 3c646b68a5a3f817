//! Runner pools: several kinds of runner behind one orchestrator, chosen by
//! a job's labels, each with its own image, limits, warm pool and cap; the
//! pools file reloaded with runners alive; bad files refused.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use test_support::{TestDocker, ensure_sim_runner_image, unique_id, wait_for};

use crate::helpers::{Options, REPO, TestEnv, free_port};

/// A pools file of the test's own, removed on drop.
struct PoolsFile {
    path: PathBuf,
}

impl PoolsFile {
    fn new(text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("gha-pools-{}.toml", unique_id()));
        std::fs::write(&path, text).unwrap();
        Self { path }
    }

    fn write(&self, text: &str) {
        std::fs::write(&self.path, text).unwrap();
    }

    fn env(&self) -> (&'static str, String) {
        ("RUNNER_POOLS_FILE", self.path.display().to_string())
    }
}

impl Drop for PoolsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A second name for the runner stand-in image, so that a pool can run
/// "another image"; untagged on drop.
struct ImageTag {
    name: String,
}

impl ImageTag {
    fn new() -> Self {
        let name = format!("gha-test-node-runner:{}", unique_id());
        let status = Command::new("docker")
            .args(["tag", ensure_sim_runner_image(), &name])
            .status()
            .unwrap();
        assert!(status.success());
        Self { name }
    }
}

impl Drop for ImageTag {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", &self.name]).output();
    }
}

/// The orchestrator with `pools`, webhooks on.
async fn start(pools: &PoolsFile, env: Vec<(&'static str, String)>) -> TestEnv {
    let mut all = vec![pools.env()];
    all.extend(env);
    TestEnv::start_with(Options {
        env: all,
        webhooks: true,
        ..Options::default()
    })
    .await
}

/// Three kinds of runner: a small default, a large one for builds, and one
/// with another image.
fn three_pools(node_image: &str) -> String {
    format!(
        r#"
[defaults]
idle_timeout = 1

[[pool]]
name = "small"
labels = ["self-hosted", "linux", "x64"]
cpus = 0.5
memory = "256m"
max = 3

[[pool]]
name = "large"
labels = ["self-hosted", "linux", "x64", "large"]
cpus = 1.5
memory = "512m"
pids_limit = 300
max = 1

[[pool]]
name = "node"
labels = ["self-hosted", "linux", "node"]
image = "{node_image}"
max = 2
env = {{ NODE_OPTIONS = "--max-old-space-size=256" }}
"#
    )
}

/// The runner that took job `id` (waits until one has), as the API shows it.
async fn runner_of_job(env: &TestEnv, id: i64) -> Value {
    let name = wait_for(
        &format!("job {id} to be taken"),
        Duration::from_secs(40),
        || async {
            let job = env.job(id).await;
            job["runner_name"].as_str().map(str::to_owned)
        },
    )
    .await;
    let (status, runner) = env.get(&format!("/runners/{name}/status")).await;
    assert_eq!(status, 200, "{runner}");
    runner
}

/// Docker's view of a runner container's limits: (memory, nano CPUs, pids limit).
fn limits(container: &str) -> (i64, i64, i64) {
    let inspect = TestDocker::inspect(container).expect("the runner's container exists");
    let host = &inspect["HostConfig"];
    (
        host["Memory"].as_i64().unwrap_or(0),
        host["NanoCpus"].as_i64().unwrap_or(0),
        host["PidsLimit"].as_i64().unwrap_or(0),
    )
}

/// The pool named `name` in `GET /pools`.
async fn pool(env: &TestEnv, name: &str) -> Value {
    let (status, body) = env.get("/pools").await;
    assert_eq!(status, 200, "{body}");
    body["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits until pool `name` has `idle` idle runners.
async fn wait_idle(env: &TestEnv, name: &str, idle: u64) {
    wait_for(
        &format!("pool {name} to have {idle} idle runners"),
        Duration::from_secs(40),
        || async { (pool(env, name).await["runners"]["idle"] == idle).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_job_lands_on_a_runner_of_its_pool_with_that_pools_limits() {
    let node = ImageTag::new();
    let file = PoolsFile::new(&three_pools(&node.name));
    let env = start(&file, vec![]).await;

    // `GET /pools`: the three, in the file's order, with their settings and
    // the names (never the values) of their extra environment.
    let (_, listed) = env.get("/pools").await;
    let names: Vec<&str> = listed["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["small", "large", "node"]);
    let node_pool = pool(&env, "node").await;
    assert_eq!(node_pool["env_keys"], json!(["NODE_OPTIONS"]));
    assert!(
        !listed.to_string().contains("max-old-space-size"),
        "{listed}"
    );

    // One job at a time, so that no idle runner of another pool is around
    // to take it: each gets a runner of the pool that fits it best.
    for (labels, expected, limit) in [
        (
            &["self-hosted", "large"][..],
            "large",
            (512 << 20, 1_500_000_000, 300),
        ),
        // Fits `small` and `large`: `small` has fewer labels beyond the job's.
        (
            &["self-hosted", "linux"],
            "small",
            (256 << 20, 500_000_000, 0),
        ),
        (&["node"], "node", (0, 0, 0)),
    ] {
        let job = env.queue_job(labels, 3000).await;
        let runner = runner_of_job(&env, job).await;
        assert_eq!(runner["pool"], expected, "{labels:?}: {runner}");
        let id = runner["id"].as_str().unwrap();
        let (memory, cpus, pids) = limits(id);
        assert_eq!(memory, limit.0, "{expected} memory");
        assert_eq!(cpus, limit.1, "{expected} cpus");
        assert_eq!(pids.max(0), limit.2, "{expected} pids limit");
        let inspect = TestDocker::inspect(id).unwrap();
        if expected == "node" {
            assert_eq!(inspect["Config"]["Image"], node.name.as_str());
        }
        assert_eq!(
            inspect["Config"]["Labels"]["dev.gha-runners.pool"], expected,
            "the pool is on the container"
        );
        let done = env.wait_job_completed(job, Duration::from_secs(40)).await;
        assert_eq!(done["conclusion"], "success");
    }

    // A job no pool fits gets no runner: two scaling passes later, still
    // queued, and no JIT configuration asked for it.
    let calls = env.jit_calls().await;
    let gpu = env.queue_job(&["self-hosted", "gpu"], 1000).await;
    env.wait_passes("scale", 2).await;
    assert_eq!(env.job(gpu).await["status"], "queued");
    assert_eq!(env.jit_calls().await, calls);
    env.wait_nothing_left(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_at_its_max_queues_its_jobs_while_another_pool_starts_runners() {
    let node = ImageTag::new();
    let file = PoolsFile::new(&three_pools(&node.name));
    let env = start(&file, vec![]).await;
    // `large` takes one runner at a time: its second job waits for the
    // first to finish, while `small`'s job starts and finishes meanwhile.
    let first = env.queue_job(&["large"], 8000).await;
    let second = env.queue_job(&["large"], 1000).await;
    let runner = runner_of_job(&env, first).await;
    assert_eq!(runner["pool"], "large");
    // Queued once `large`'s one runner is busy, so that only a runner made
    // for it can take it.
    let small = env.queue_job(&["x64"], 500).await;
    env.wait_job_completed(small, Duration::from_secs(40)).await;
    assert_eq!(runner_of_job(&env, small).await["pool"], "small");
    let waiting = env.job(second).await;
    assert_eq!(
        waiting["status"], "queued",
        "large is at its max of 1: {waiting}"
    );
    assert_eq!(env.job(first).await["status"], "in_progress");
    let shown = pool(&env, "large").await;
    assert_eq!(shown["queued_jobs"], 1, "{shown}");
    assert_eq!(shown["runners"]["busy"], 1, "{shown}");
    // A create asked for by hand counts against the same cap.
    let (status, refused) = env
        .post("/runners/create", json!({"count": 1, "pool": "large"}))
        .await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"large\""),
        "{refused}"
    );
    let done = env
        .wait_job_completed(second, Duration::from_secs(60))
        .await;
    assert_eq!(done["conclusion"], "success");
    assert_eq!(runner_of_job(&env, second).await["pool"], "large");
    env.wait_nothing_left(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_pools_refill_each_on_its_own() {
    let file = PoolsFile::new(
        r#"
[[pool]]
name = "small"
labels = ["self-hosted", "small"]
min_idle = 1

[[pool]]
name = "large"
labels = ["self-hosted", "large"]
min_idle = 2
"#,
    );
    let env = start(&file, vec![]).await;
    wait_idle(&env, "small", 1).await;
    wait_idle(&env, "large", 2).await;
    assert_eq!(env.jit_calls().await, 3);
    // `small`'s warm runner takes a job; `small` refills, `large` is left
    // as it was.
    let job = env.queue_job(&["self-hosted", "small"], 500).await;
    assert_eq!(runner_of_job(&env, job).await["pool"], "small");
    env.wait_job_completed(job, Duration::from_secs(40)).await;
    wait_idle(&env, "small", 1).await;
    env.wait_passes("scale", 2).await;
    assert_eq!(pool(&env, "large").await["runners"]["idle"], 2);
    assert_eq!(env.jit_calls().await, 4, "one refill, in `small` only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_names_its_pool_and_a_bad_pool_is_refused() {
    let node = ImageTag::new();
    let file = PoolsFile::new(&three_pools(&node.name));
    let env = start(&file, vec![]).await;
    let (status, body) = env
        .post("/runners/create", json!({"count": 1, "pool": "large"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let runner = &body["runners"][0];
    assert_eq!(runner["pool"], "large");
    assert_eq!(
        runner["labels"],
        json!(["self-hosted", "linux", "x64", "large"])
    );
    assert_eq!(
        limits(runner["id"].as_str().unwrap()).0,
        512 << 20,
        "large's memory"
    );
    let (_, listed) = env.get("/runners?pool=large").await;
    assert_eq!(listed["total"], 1, "{listed}");
    let (_, listed) = env.get("/runners?pool=small").await;
    assert_eq!(listed["total"], 0, "{listed}");
    // Unknown pool, or more than the pool's max: 422, nothing made.
    for request in [
        json!({"count": 1, "pool": "huge"}),
        json!({"count": 3, "pool": "node"}),
    ] {
        let (status, body) = env.post("/runners/create", request.clone()).await;
        assert_eq!(status, 422, "{request}: {body}");
    }
    assert_eq!(env.containers().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_changes_and_removes_pools_with_runners_alive() {
    let file = PoolsFile::new(
        r#"
[defaults]
idle_timeout = 1

[[pool]]
name = "small"
labels = ["self-hosted", "linux", "x64"]
memory = "256m"
min_idle = 1

[[pool]]
name = "large"
labels = ["self-hosted", "linux", "x64", "large"]
min_idle = 1
"#,
    );
    let env = start(&file, vec![]).await;
    wait_idle(&env, "small", 1).await;
    wait_idle(&env, "large", 1).await;
    // `large`'s runner takes a long job; `large` refills its warm pool.
    let busy_job = env.queue_job(&["large"], 10_000).await;
    let busy = runner_of_job(&env, busy_job).await;
    assert_eq!(busy["pool"], "large");
    wait_idle(&env, "large", 1).await;

    // `large` goes, `small` changes (two warm runners, more memory), `gpu` comes.
    file.write(
        r#"
[defaults]
idle_timeout = 1

[[pool]]
name = "small"
labels = ["self-hosted", "linux", "x64"]
memory = "300m"
min_idle = 2

[[pool]]
name = "gpu"
labels = ["self-hosted", "linux", "x64", "gpu"]
min_idle = 1
"#,
    );
    let (status, body) = env.post("/pools/reload", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["small", "gpu"]);
    wait_idle(&env, "small", 2).await;
    wait_idle(&env, "gpu", 1).await;
    // `large`'s idle runner was removed; its busy one finishes its job.
    wait_for(
        "large's idle runner to go",
        Duration::from_secs(30),
        || async {
            let (_, listed) = env.get("/runners?pool=large&state=idle").await;
            (listed["total"] == 0).then_some(())
        },
    )
    .await;
    let done = env
        .wait_job_completed(busy_job, Duration::from_secs(40))
        .await;
    assert_eq!(done["conclusion"], "success");
    // The new `small` runner has the new memory; the old one kept its own.
    let (_, small) = env.get("/runners?pool=small&state=idle").await;
    let mut memories: Vec<i64> = small["runners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| limits(r["id"].as_str().unwrap()).0)
        .collect();
    memories.sort_unstable();
    assert_eq!(memories, [256 << 20, 300 << 20]);

    // A bad file changes nothing: 422 naming the pool and the key, and
    // `/health` says why until a good file is taken.
    file.write("[[pool]]\nname = \"small\"\nlabels = [\"x64\"]\nmin_idle = 5\nmax = 2\n");
    let (status, body) = env.post("/pools/reload", json!({})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_pools_file");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"small\"") && message.contains("min_idle"),
        "{message}"
    );
    let (_, health) = env.get("/health").await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(
        health["pools"]["reload_error"]
            .as_str()
            .unwrap()
            .contains("min_idle")
    );
    assert_eq!(health["pools"]["names"], json!(["small", "gpu"]));

    // SIGHUP reads the file as the API does: no warm pools now, and idle
    // runners go after their 1 s idle timeout; nothing is left.
    file.write(
        "[defaults]\nidle_timeout = 1\n[[pool]]\nname = \"small\"\nlabels = [\"self-hosted\", \"linux\", \"x64\"]\n",
    );
    let pid = env.orchestrator.as_ref().unwrap().id();
    let sent = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    wait_for("the SIGHUP reload", Duration::from_secs(20), || async {
        let (_, health) = env.get("/health").await;
        (health["pools"]["names"] == json!(["small"])).then_some(health)
    })
    .await;
    let (_, health) = env.get("/health").await;
    assert_eq!(health["pools"]["reload_error"], Value::Null);
    env.wait_nothing_left(Duration::from_secs(40)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_pools_file_stops_the_start_naming_the_pool_and_the_key() {
    let env = TestEnv::start().await;
    for (text, expected) in [
        (
            "[[pool]]\nname = \"big\"\nlabels = [\"x\"]\nmemory = \"lots\"\n",
            ["pool \"big\"", "memory"],
        ),
        (
            "[[pool]]\nname = \"a\"\nlabels = [\"x\", \"y\"]\n[[pool]]\nname = \"b\"\nlabels = [\"y\", \"X\"]\n",
            ["pool \"b\"", "same label set"],
        ),
        (
            "[[pool]]\nname = \"c\"\nlabels = [\"x\"]\nimage = \"evil:latest\"\n",
            ["pool \"c\"", "RUNNER_IMAGE_ALLOWLIST"],
        ),
        (
            "[[pool]]\nname = \"d\"\nlabels = [\"x\"]\ncpu = 2\n",
            ["pool \"d\"", "cpu"],
        ),
    ] {
        let file = PoolsFile::new(text);
        let mut command = env.orchestrator_command(free_port());
        command
            .env("RUNNER_POOLS_FILE", &file.path)
            .env("RUNNER_IMAGE_ALLOWLIST", ensure_sim_runner_image())
            .env("ORCHESTRATOR_ID", format!("{}-bad", env.docker.id));
        let output = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        assert!(!output.status.success(), "{text}");
        let stderr = String::from_utf8_lossy(&output.stderr).to_string()
            + &String::from_utf8_lossy(&output.stdout);
        for part in expected {
            assert!(stderr.contains(part), "{text}: {stderr}");
        }
        assert!(stderr.contains("RUNNER_POOLS_FILE"), "{stderr}");
    }
    // Without a pools file, the variables make one pool, `default`.
    let (_, listed) = env.get("/pools").await;
    assert_eq!(listed["pools"][0]["name"], "default");
    assert_eq!(listed["pools"][0]["repository"], REPO);
    let (status, body) = env.post("/pools/reload", json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "no_pools_file");
}
