//! Each rule fails on a planted violation in a small tree, passes once it is removed, and the repository
//! itself follows every rule.

use mxrt_archcheck::{check, check_repository, Tree, Violation, MAX_LINES};

fn tree(files: &[(&str, &str)]) -> Tree {
    files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

/// A miniature runtime that follows the rules.
fn clean_runtime() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "runtime/src/lib.rs",
            "mod cpu;\nmod error;\npub mod graphs;\npub mod model;\npub mod ops;\nmod weights;\n\
             pub use model::Model;\n",
        ),
        ("runtime/src/error.rs", "pub struct RuntimeError;\n"),
        ("runtime/src/weights.rs", "use crate::error::RuntimeError;\npub struct TensorRef;\n"),
        ("runtime/src/ops/mod.rs", "mod args;\npub use args::Linear;\npub trait Backend {}\n"),
        ("runtime/src/ops/args.rs", "use crate::weights::TensorRef;\npub struct Linear(TensorRef);\n"),
        ("runtime/src/graphs/mod.rs", "pub mod bert;\n"),
        (
            "runtime/src/graphs/bert.rs",
            "use crate::ops::{Backend, Linear};\nuse crate::error::RuntimeError;\npub struct Bert;\n",
        ),
        ("runtime/src/cpu/mod.rs", "mod frame;\nmod kernels;\nuse crate::ops::Backend;\n"),
        ("runtime/src/cpu/frame.rs", "use super::kernels::Kernels;\npub struct Cpu;\n"),
        ("runtime/src/cpu/kernels.rs", "pub struct Kernels;\n"),
        (
            "runtime/src/model.rs",
            "use crate::graphs::bert::Bert;\nuse crate::cpu::Cpu;\npub struct Model;\n",
        ),
    ]
}

fn with(
    mut files: Vec<(&'static str, &'static str)>,
    path: &'static str,
    text: &'static str,
) -> Tree {
    files.retain(|(p, _)| *p != path);
    files.push((path, text));
    tree(&files)
}

#[test]
fn the_miniature_runtime_passes() {
    let report = check(&tree(&clean_runtime()));
    assert_eq!(report.violations, vec![]);
    assert_eq!(report.cycles, 0);
    assert_eq!(report.files, clean_runtime().len());
}

#[test]
fn a_backend_importing_a_graph_is_a_layer_violation() {
    let t = with(
        clean_runtime(),
        "runtime/src/cpu/frame.rs",
        "use super::kernels::Kernels;\nuse crate::graphs::bert::Bert;\npub struct Cpu;\n",
    );
    let report = check(&t);
    assert_eq!(
        report.violations,
        vec![Violation::Layer {
            file: "runtime/src/cpu/frame.rs".into(),
            from: "cpu".into(),
            to: "graphs".into(),
            path: "crate::graphs::bert::Bert".into(),
        }]
    );
}

#[test]
fn the_op_set_importing_a_graph_in_an_expression_is_caught_in_a_group() {
    let t = with(
        clean_runtime(),
        "runtime/src/ops/args.rs",
        "use crate::{weights::TensorRef, error::RuntimeError};\n\
         fn f() { let _ = crate::graphs::bert::Bert; }\npub struct Linear(TensorRef);\n",
    );
    let report = check(&t);
    let v = &report.violations;
    // The op set now imports graphs, which import the op set: a layer violation and a cycle.
    assert_eq!((v.len(), report.cycles), (2, 1), "{v:?}");
    assert!(v
        .iter()
        .any(|v| matches!(v, Violation::Layer { from, to, path, .. }
        if from == "op set" && to == "graphs" && path == "crate::graphs::bert::Bert")));
}

#[test]
fn imports_in_comments_strings_and_test_code_do_not_count() {
    let t = with(
        clean_runtime(),
        "runtime/src/cpu/frame.rs",
        "use super::kernels::Kernels;\n// use crate::graphs::bert::Bert;\n\
         const S: &str = \"crate::model::Model\";\n/* crate::graphs */\npub struct Cpu;\n\
         #[cfg(test)]\nmod tests {\n    use crate::graphs::bert::Bert;\n}\n\
         #[cfg(all(test, feature = \"x\"))]\nfn helper() { let _ = crate::model::Model; }\n",
    );
    assert_eq!(check(&t).violations, vec![]);
}

#[test]
fn a_module_declared_for_tests_only_is_left_out() {
    let mut files = clean_runtime();
    files.retain(|(p, _)| *p != "runtime/src/lib.rs");
    files.push((
        "runtime/src/lib.rs",
        "mod cpu;\nmod error;\npub mod graphs;\npub mod model;\npub mod ops;\nmod weights;\n\
         #[cfg(test)]\nmod device_tests;\n",
    ));
    files.push((
        "runtime/src/device_tests.rs",
        "use crate::cpu::Cpu;\nuse crate::graphs::bert::Bert;\n",
    ));
    assert_eq!(check(&tree(&files)).violations, vec![]);
}

#[test]
fn an_unlisted_runtime_module_is_reported() {
    let mut files = clean_runtime();
    files.push(("runtime/src/helpers.rs", "pub fn f() {}\n"));
    assert_eq!(
        check(&tree(&files)).violations,
        vec![Violation::Unlayered {
            module: "helpers".into()
        }]
    );
}

#[test]
fn two_siblings_importing_each_other_are_a_cycle_in_any_crate() {
    let t = tree(&[
        ("src/main.rs", "mod commands;\nmod output;\n"),
        ("src/commands/mod.rs", "pub mod sweep;\n"),
        (
            "src/commands/sweep.rs",
            "use crate::output::print_table;\npub struct Row;\n",
        ),
        (
            "src/output.rs",
            "use crate::commands::sweep::Row;\npub fn print_table() {}\n",
        ),
    ]);
    let report = check(&t);
    assert_eq!(report.cycles, 1);
    let Violation::Cycle {
        krate,
        parent,
        steps,
    } = &report.violations[0]
    else {
        panic!("{:?}", report.violations)
    };
    assert_eq!((krate.as_str(), parent.as_str()), ("src", "crate"));
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert!(steps[0].starts_with("commands → output") && steps[1].starts_with("output → commands"));
}

#[test]
fn a_cycle_through_super_deep_in_a_tree_is_found() {
    let t = tree(&[
        ("format/src/lib.rs", "mod a;\n"),
        ("format/src/a/mod.rs", "mod b;\nmod c;\nmod d;\n"),
        ("format/src/a/b.rs", "use super::c::X;\npub struct Y;\n"),
        ("format/src/a/c.rs", "use super::d::Z;\npub struct X;\n"),
        (
            "format/src/a/d.rs",
            "pub struct Z;\nfn f() { let _ = super::b::Y; }\n",
        ),
    ]);
    let report = check(&t);
    assert_eq!(report.cycles, 1, "{:?}", report.violations);
    assert!(report.violations[0].to_string().contains("under `a`"));
    // Break the loop: no cycle.
    let mut t = t;
    t.insert("format/src/a/d.rs".into(), "pub struct Z;\n".into());
    assert_eq!(check(&t).cycles, 0);
}

#[test]
fn a_parent_and_its_children_may_name_each_other() {
    let t = tree(&[
        ("format/src/lib.rs", "mod a;\npub use a::b::Y;\n"),
        ("format/src/a/mod.rs", "pub mod b;\npub struct K;\n"),
        (
            "format/src/a/b.rs",
            "use super::K;\nuse crate::a::K as K2;\npub struct Y;\n",
        ),
    ]);
    assert_eq!(check(&t).violations, vec![]);
}

#[test]
fn a_source_file_over_the_limit_is_reported_unless_it_is_a_test() {
    let long = "x\n".repeat(MAX_LINES + 1);
    let ok = "x\n".repeat(MAX_LINES);
    let t: Tree = [
        ("kernels/big.cu".to_string(), long.clone()),
        ("shaders/fine.wgsl".to_string(), ok),
        ("runtime/tests/kernels.rs".to_string(), long.clone()),
    ]
    .into_iter()
    .collect();
    let report = check(&t);
    assert_eq!(
        report.violations,
        vec![Violation::Oversized {
            file: "kernels/big.cu".into(),
            lines: MAX_LINES + 1
        }]
    );
    assert_eq!(report.files, 2);
    assert_eq!(
        report.largest,
        Some(("kernels/big.cu".into(), MAX_LINES + 1))
    );
}

#[test]
fn this_repository_follows_the_rules() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let report = check_repository(&root).expect("the repository is readable");
    let listed: Vec<String> = report.violations.iter().map(|v| v.to_string()).collect();
    assert!(
        listed.is_empty(),
        "architecture violations:\n{}",
        listed.join("\n")
    );
    assert!(
        report.files > 100,
        "only {} source files found",
        report.files
    );
}
