//! Restart and crash: every acknowledged registration is still answered afterwards.

use hickory_proto::rr::RecordType;

use crate::support::{Agent, Transport, srv_targets};

fn register(agent: &Agent, i: usize) {
    let body = format!(r#"{{"Name":"svc{i}","ID":"svc{i}","Port":{}}}"#, 10000 + i);
    agent.put_ok("/v1/agent/service/register", &body);
}

fn count_present(agent: &Agent, n: usize) -> usize {
    (0..n)
        .filter(|i| {
            srv_targets(&agent.query(&format!("svc{i}.service.consul."), RecordType::SRV, Transport::Udp))
                .len()
                == 1
        })
        .count()
}

#[test]
fn restart_on_the_same_data_dir_serves_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::server(dir.path(), &[]);
    for i in 0..5 {
        register(&agent, i);
    }
    let before = agent.query("svc3.service.consul.", RecordType::SRV, Transport::Udp);
    assert_eq!(agent.terminate(), Some(0), "clean exit on SIGTERM: {}", agent.log());

    let agent = Agent::server(dir.path(), &[]);
    let after = agent.query("svc3.service.consul.", RecordType::SRV, Transport::Udp);
    assert_eq!(srv_targets(&before), srv_targets(&after));
    assert_eq!(count_present(&agent, 5), 5);
    // The node ID is kept, so the agent re-registers as the same node.
    let (_, node) = agent.get("/v1/catalog/node/node1").unwrap();
    assert!(!node["Node"]["ID"].as_str().unwrap().is_empty());
}

#[test]
fn kill_9_right_after_acknowledged_writes_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::server(dir.path(), &[]);
    let n = 40;
    // Concurrent writers, so acknowledgements come from grouped commits too.
    std::thread::scope(|s| {
        for t in 0..4 {
            let agent = &agent;
            s.spawn(move || {
                for i in (t..n).step_by(4) {
                    register(agent, i);
                }
            });
        }
    });
    agent.kill9();
    let agent = Agent::server(dir.path(), &[]);
    assert_eq!(count_present(&agent, n), n, "{}", agent.log());
}
