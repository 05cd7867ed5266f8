use super::*;

const DOC: &str = "\
kind: team
name: finance
rules:
  - id: a
    tier: 2
  - id: b
    when:
      amount: { gt: 500 }
    tier: 3
egress:
  allow: [10.0.0.1:443, 10.0.0.2:443]
";

fn at(path: &str) -> String {
    Positions::index("f.yaml".into(), DOC).at(path).to_string()
}

#[test]
fn block_and_flow_nodes_have_their_positions() {
    assert_eq!(at("kind"), "f.yaml:1:7");
    assert_eq!(at("rules[0]"), "f.yaml:4:5");
    assert_eq!(at("rules[1].tier"), "f.yaml:9:11");
    assert_eq!(at("rules[1].when.amount"), "f.yaml:8:15");
    assert_eq!(at("rules[1].when.amount.gt"), "f.yaml:8:21");
    assert_eq!(at("egress.allow[1]"), "f.yaml:11:25");
}

#[test]
fn unknown_paths_fall_back_to_the_nearest_ancestor() {
    assert_eq!(at("rules[1].when.records"), "f.yaml:8:7");
    assert_eq!(at("nowhere"), "f.yaml:1:1");
}

#[test]
fn unparsable_text_points_at_the_file() {
    let p = Positions::index("g.yaml".into(), "a: [\n");
    assert!(p.at("a.b").to_string().starts_with("g.yaml"));
}
