//! The checked-in `schema.graphql` is exactly what `gemba schema` prints.

#[test]
fn schema_file_matches_the_running_schema() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql");
    let on_disk =
        std::fs::read_to_string(path).expect("schema.graphql exists at the repository root");
    let live = gemba::graphql::sdl();
    assert!(
        on_disk == live,
        "schema.graphql is stale: regenerate it with `cargo run -p gemba -- schema > schema.graphql`"
    );
}
