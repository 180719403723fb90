//! Checks that include/mlak.h matches what the pinned cbindgen generates
//! from the sources. `MLAK_BLESS=1 cargo test --test header` rewrites it.
#![cfg(target_arch = "x86_64")]

#[test]
fn header_matches_sources() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).expect("cbindgen.toml must parse");
    let bindings = cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen must generate the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);

    let path = format!("{dir}/include/mlak.h");
    if std::env::var_os("MLAK_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("include/mlak.h must be writable");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/mlak.h is stale; regenerate it with `MLAK_BLESS=1 cargo test --test header` and commit it"
    );
}
