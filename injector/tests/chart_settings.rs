//! The chart's rendered `mesh-injector` ConfigMap (the default install's golden render) reads as
//! injection settings: the chart and the injector agree on the shape of `settings.yaml`.

use mesh_injector::{InjectionSettings, NativeSidecars, manifest};

#[test]
fn the_default_chart_settings_parse() {
    let golden = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/chart/golden/default.yaml"
    );
    let text = std::fs::read_to_string(golden).expect("the chart's golden render");
    let configmap = manifest::objects(&text)
        .into_iter()
        .map(|o| o.expect("rendered objects read").value)
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "mesh-injector")
        .expect("the chart renders ConfigMap mesh-injector");
    let yaml = configmap["data"]["settings.yaml"]
        .as_str()
        .expect("settings.yaml in the ConfigMap");
    let settings = InjectionSettings::parse(yaml, "settings.yaml").expect("settings parse");
    assert_eq!(
        settings.discovery_address,
        "https://mesh-control-plane.mesh-system.svc:15012"
    );
    assert_eq!(settings.native_sidecars, NativeSidecars::Auto);
    assert!(settings.image.starts_with("mesh:"), "{}", settings.image);
}
