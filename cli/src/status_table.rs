//! The `mesh proxy-status` table: one row per connected proxy with the state of each resource
//! type, like `istioctl proxy-status`; the wide form adds the proxies' rejections (NACKs).

use mesh_control_plane::xds::{ProxySync, ResourceType, SyncStatus};

/// The resource types in the order of the columns.
const COLUMNS: [ResourceType; 5] = [
    ResourceType::Cluster,
    ResourceType::Listener,
    ResourceType::Endpoints,
    ResourceType::Route,
    ResourceType::Telemetry,
];

/// Renders `status` as a table; `control_plane` fills the CONTROL-PLANE column.
pub fn render(status: &SyncStatus, control_plane: &str, wide: bool) -> String {
    let mut header = vec!["NAME".to_owned()];
    header.extend(COLUMNS.map(|ty| ty.short_name().to_owned()));
    header.extend(["CONTROL-PLANE".to_owned(), "VERSION".to_owned()]);
    if wide {
        header.push("NACK".to_owned());
    }
    let mut rows = vec![header];
    for proxy in &status.proxies {
        let mut row = vec![proxy.id.clone()];
        row.extend(COLUMNS.map(|ty| {
            proxy
                .of(ty)
                .map_or_else(|| "NOT SENT".to_owned(), |t| t.state.to_string())
        }));
        row.extend([control_plane.to_owned(), proxy.proxy_version.clone()]);
        if wide {
            row.push(nacks(proxy).join("; "));
        }
        rows.push(row);
    }
    crate::output::columns(&rows)
}

/// The proxy's rejections, one per type: `CDS version V: error`.
pub fn nacks(proxy: &ProxySync) -> Vec<String> {
    COLUMNS
        .iter()
        .filter_map(|ty| {
            let nack = proxy.of(*ty)?.nack.as_ref()?;
            Some(format!("{ty} version {}: {}", nack.version, nack.error))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use mesh_control_plane::xds::{Nack, SyncState, TypeSync};

    use super::*;

    fn proxy(id: &str, cds: SyncState, nack: Option<&str>) -> ProxySync {
        ProxySync {
            id: id.into(),
            pod: String::new(),
            namespace: String::new(),
            proxy_version: "0.1.0".into(),
            delta: false,
            generation: 2,
            types: ResourceType::ALL
                .map(|ty| TypeSync {
                    resource_type: ty,
                    state: if ty == ResourceType::Cluster {
                        cds
                    } else {
                        SyncState::Synced
                    },
                    sent: Some("v2".into()),
                    acked: Some("v1".into()),
                    nack: nack.filter(|_| ty == ResourceType::Cluster).map(|e| Nack {
                        version: "v2".into(),
                        error: e.into(),
                    }),
                })
                .into(),
        }
    }

    #[test]
    fn columns_are_aligned_in_istioctl_order_and_wide_adds_nacks() {
        let status = SyncStatus {
            proxies: vec![
                proxy("web-1.shop", SyncState::Synced, None),
                proxy("sleep.shop", SyncState::Stale, Some("bad cluster")),
            ],
        };
        let table = render(&status, "cp", false);
        let lines: Vec<_> = table.lines().collect();
        assert_eq!(
            lines[0],
            "NAME         CDS      LDS      EDS      RDS      TDS      CONTROL-PLANE   VERSION"
        );
        assert_eq!(
            lines[2],
            "sleep.shop   STALE    SYNCED   SYNCED   SYNCED   SYNCED   cp              0.1.0"
        );
        assert!(!table.contains("bad cluster"));
        let wide = render(&status, "cp", true);
        assert!(
            wide.lines().next().is_some_and(|l| l.ends_with("NACK")),
            "{wide}"
        );
        assert!(wide.contains("CDS version v2: bad cluster"), "{wide}");
    }
}
