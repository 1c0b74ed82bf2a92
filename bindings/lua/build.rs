//! macOS: a Lua module must leave the Lua API symbols undefined, to be
//! resolved from the interpreter that loads it (`-undefined dynamic_lookup`);
//! Apple's linker refuses undefined symbols otherwise. A build script rather
//! than `.cargo/config.toml`, because cargo reads that file from the current
//! directory, which `luarocks make` and `--manifest-path` builds do not set.
//! Untested: no macOS machine was available.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("macos") {
        println!("cargo:rustc-cdylib-link-arg=-undefined");
        println!("cargo:rustc-cdylib-link-arg=dynamic_lookup");
    }
}
