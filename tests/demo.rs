//! `make demo` as a new user runs it, and stops it: the demo's process group
//! gets the signal a terminal sends on Ctrl-C (here SIGTERM, as a supervisor
//! would send), and nothing the demo started may be left once it has exited:
//! no process, mount, interface, cgroup or iptables rule of its plane and node.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flowfed_tests::{node_leftovers, repo_root};

#[test]
fn stopping_the_demo_stops_everything_it_started() {
    let name = format!("t{}-demo", std::process::id());
    // Whatever fails below, the demo's process group is stopped: a demo left
    // running holds this machine's one node, and every later node test fails.
    let mut demo = StopOnDrop(
        Command::new(repo_root().join("scripts/demo.sh"))
            .env("FLOWFED_DEMO_PLANE", &name)
            .current_dir(repo_root())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    let pgid = demo.0.id();
    // Read the demo's output on a thread to the end (a closed pipe would be a
    // different test: of SIGPIPE), and wait here for its last line.
    let (lines, printed_lines) = std::sync::mpsc::channel();
    let stdout = demo.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut printed = Vec::new();
    while let Ok(line) = printed_lines.recv_timeout(Duration::from_secs(900)) {
        let last = line.starts_with("Ctrl-C stops");
        printed.push(line);
        if last {
            break;
        }
    }
    let printed = printed.join("\n");
    assert!(
        printed.contains("flowfed demo: the national network is interconnected"),
        "the demo came up: {printed}"
    );
    assert!(printed.contains("hong-kong: NoProcessor"), "{printed}");
    assert!(!node_leftovers(&name).is_empty(), "the demo runs a node");

    let stopping = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", "--", &format!("-{pgid}")])
        .status();
    assert!(status.unwrap().success());
    let grace = Duration::from_secs(120);
    while demo.0.try_wait().unwrap().is_none() {
        assert!(
            stopping.elapsed() < grace,
            "the demo still runs {grace:?} after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("the demo stopped in {:?}", stopping.elapsed());
    let said: Vec<String> = printed_lines.try_iter().collect();
    assert!(
        said.iter().any(|l| l.contains("plane removed")),
        "the demo said it cleaned up: {said:?}"
    );
    let left = node_leftovers(&name);
    assert!(
        left.is_empty(),
        "left behind by the demo:\n{}",
        left.join("\n")
    );
    assert!(
        !repo_root().join(".flowfed").join(&name).exists(),
        "its plane is removed"
    );
}

/// The demo, its process group sent SIGTERM when dropped while it still
/// runs, and given time to clean up.
struct StopOnDrop(std::process::Child);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if !matches!(self.0.try_wait(), Ok(None)) {
            return;
        }
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(120);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
