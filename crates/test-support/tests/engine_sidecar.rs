//! The layout of a runner with a private Docker engine (issue #18), built by
//! hand with the docker CLI, no orchestrator: an engine container with the
//! rights dockerd needs, and an unprivileged runner container that shares its
//! network namespace, its socket volume and a work volume at the same path.
//! This proves the layout works on our machines before the orchestrator
//! creates it for sidecar pools.

use std::process::Command;
use std::time::Duration;

use test_support::dind::{self, ENGINE_RIGHTS, LabelledResources};
use test_support::{ensure_base_image, ensure_dind_image, wait_for};

/// Where the runner's work directory is, in the runner and in the engine
/// alike (the official runner image's `_work`).
const WORK_DIR: &str = "/home/runner/_work";
/// The engine's socket directory: a volume shared with the runner only.
const SOCKET_DIR: &str = "/run/docker";
/// The official runner image's user.
const RUNNER_USER: &str = "1001:1001";
/// The gid of the official runner image's `docker` group, which owns the
/// engine's socket (the entrypoint's default).
const DOCKER_GID: &str = "123";
/// A pool's registry mirror, as the engine is given it.
const MIRROR: &str = "http://mirror.invalid:5000";

#[tokio::test]
async fn a_runner_uses_its_own_engine_through_a_shared_socket_network_and_work_directory() {
    let base = ensure_base_image();
    let dind_image = ensure_dind_image();
    let sandbox = LabelledResources::new();
    let label = sandbox.label_args();
    let name = |what: &str| format!("gha-test-{}-{what}", sandbox.id);
    let (engine, runner) = (name("engine"), name("runner"));
    let (socket_volume, work_volume, storage_volume) =
        (name("docker-sock"), name("work"), name("docker-lib"));
    for volume in [&socket_volume, &work_volume, &storage_volume] {
        docker(&["volume", "create"], &label, &[volume]);
    }

    // The engine: the only container with elevated rights. The mirror is
    // never contacted (every image is local); `.invalid` never resolves.
    docker(
        &["run", "-d", "--name", &engine],
        &label,
        &[
            ENGINE_RIGHTS,
            &[
                "-e",
                &format!("DOCKER_REGISTRY_MIRROR={MIRROR}"),
                "-v",
                &format!("{socket_volume}:{SOCKET_DIR}"),
                "-v",
                &format!("{work_volume}:{WORK_DIR}"),
                "-v",
                &format!("{storage_volume}:/var/lib/docker"),
                dind_image,
            ],
        ]
        .concat(),
    );
    dind::wait_for_engine(&engine, Duration::from_secs(60)).await;
    let mirrors = in_engine(
        &engine,
        &["docker", "info", "-f", "{{json .RegistryConfig.Mirrors}}"],
    );
    assert_eq!(mirrors.trim(), format!(r#"["{MIRROR}/"]"#));
    // A fresh volume's root belongs to root; the runner's user must be able
    // to write its work directory (the orchestrator will have to do the same).
    in_engine(&engine, &["chown", RUNNER_USER, WORK_DIR]);
    // No registry: the images the job needs go in through the socket.
    dind::load_image(&engine, base);

    // The runner: unprivileged, in the engine's network namespace, with the
    // socket and the work directory. The engine image stands in for a runner
    // image because it has the docker CLI; its entrypoint is not run.
    docker(
        &["run", "-d", "--name", &runner],
        &label,
        &[
            "--network",
            &format!("container:{engine}"),
            "--user",
            RUNNER_USER,
            "--group-add",
            DOCKER_GID,
            "-e",
            "HOME=/tmp",
            "-e",
            &format!("DOCKER_HOST=unix://{SOCKET_DIR}/docker.sock"),
            "-v",
            &format!("{socket_volume}:{SOCKET_DIR}"),
            "-v",
            &format!("{work_volume}:{WORK_DIR}"),
            "--entrypoint",
            "sleep",
            dind_image,
            "infinity",
        ],
    );
    let host = inspect(&runner);
    assert_eq!(host["Privileged"], false, "the runner is not privileged");
    assert!(
        host["CapAdd"].as_array().is_none_or(Vec::is_empty),
        "the runner has no extra capabilities: {}",
        host["CapAdd"]
    );

    // (a) A container in the runner's own engine runs, and its output comes back.
    let out = in_runner(
        &runner,
        &format!("docker run --rm {base} echo hello from the inner engine"),
    );
    assert_eq!(out.trim(), "hello from the inner engine");

    // (b) The work directory is the same path for the runner and the engine.
    let out = in_runner(
        &runner,
        &format!(
            "echo written by the runner > {WORK_DIR}/note.txt && \
             docker run --rm -v {WORK_DIR}:{WORK_DIR} {base} cat {WORK_DIR}/note.txt"
        ),
    );
    assert_eq!(out.trim(), "written by the runner");

    // (c) A service container's published port is localhost for the runner.
    // The base image has perl (Debian's minbase needs it), so it can listen.
    let listener = r#"$s = IO::Socket::INET->new(LocalPort => 8080, Listen => 5, ReuseAddr => 1) or die $!; while ($c = $s->accept) { print $c "hello from the service\n"; close $c }"#;
    in_runner(
        &runner,
        &format!(
            "docker run -d --name service -p 8080:8080 {base} perl -MIO::Socket::INET -e '{listener}'"
        ),
    );
    let answer = wait_for(
        "the service on localhost:8080",
        Duration::from_secs(30),
        || {
            let out = try_in_runner(&runner, "exec 3<>/dev/tcp/127.0.0.1/8080 && cat <&3");
            async move { out.filter(|text| !text.is_empty()) }
        },
    )
    .await;
    assert_eq!(answer.trim(), "hello from the service");

    // (d) Isolation. The runner has no host socket, and the engine no TCP
    // listener: of the ports listening in their shared namespace (the
    // service's 8080 is one, which shows the check sees them), none is
    // Docker's 2375 or 2376.
    let listening = in_runner(
        &runner,
        "test ! -e /var/run/docker.sock && \
         ! docker -H unix:///var/run/docker.sock version >/dev/null 2>&1 && \
         cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4 == \"0A\" { sub(/.*:/, \"\", $2); print $2 }'",
    );
    let ports: Vec<u16> = listening
        .split_whitespace()
        .map(|hex| u16::from_str_radix(hex, 16).expect("hex port"))
        .collect();
    assert!(ports.contains(&8080), "listening: {ports:?}");
    assert!(
        !ports.contains(&2375) && !ports.contains(&2376),
        "listening: {ports:?}"
    );
    // The inner engine knows only its own containers, not the host's...
    let inner = in_runner(&runner, "docker ps -a --format '{{.Names}}'");
    assert_eq!(inner.split_whitespace().collect::<Vec<_>>(), ["service"]);
    // ...and its containers get no Docker socket at all.
    in_runner(
        &runner,
        &format!(
            "docker run --rm {base} sh -c 'test ! -e /var/run/docker.sock && test ! -e {SOCKET_DIR}'"
        ),
    );

    // Removing the engine's storage volume takes the inner containers along.
    let id = sandbox.id.clone();
    drop(sandbox);
    let (containers, volumes) = LabelledResources { id }.remaining();
    assert!(
        containers.is_empty() && volumes.is_empty(),
        "left behind: {containers:?} {volumes:?}"
    );
}

/// Runs `docker <command> <labels> <args>` on the host and fails the test
/// when it fails.
fn docker(command: &[&str], labels: &[String], args: &[&str]) {
    let out = Command::new("docker")
        .args(command)
        .args(labels)
        .args(args)
        .output()
        .expect("docker CLI");
    assert!(
        out.status.success(),
        "docker {command:?} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `command` in the engine container, as root; its output.
fn in_engine(engine: &str, command: &[&str]) -> String {
    let out = Command::new("docker")
        .args(["exec", engine])
        .args(command)
        .output()
        .expect("docker CLI");
    assert!(
        out.status.success(),
        "in the engine: {command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `docker inspect` of a container's `HostConfig`.
fn inspect(container: &str) -> serde_json::Value {
    let out = Command::new("docker")
        .args(["inspect", "-f", "{{json .HostConfig}}", container])
        .output()
        .expect("docker CLI");
    serde_json::from_slice(&out.stdout).expect("HostConfig as JSON")
}

/// Runs a bash script in the runner container, as the runner's user.
fn exec_in_runner(runner: &str, script: &str) -> std::process::Output {
    Command::new("docker")
        .args(["exec", runner, "bash", "-c", script])
        .output()
        .expect("docker CLI")
}

/// The script's output, `None` when it fails.
fn try_in_runner(runner: &str, script: &str) -> Option<String> {
    let out = exec_in_runner(runner, script);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The script's output; fails the test when the script fails.
fn in_runner(runner: &str, script: &str) -> String {
    let out = exec_in_runner(runner, script);
    assert!(
        out.status.success(),
        "in the runner: {script}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
