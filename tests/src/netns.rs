//! Distinct hosts on one machine: each a network namespace with its own address on a bridge in
//! the root namespace, so traffic between them crosses real (virtual) interfaces instead of
//! loopback. Needs root and iproute2 (`ip`); [`Hosts::create`] says why not where it cannot.

use std::process::Command;

/// A bridge and namespaces hanging off it; all removed when dropped.
#[derive(Debug)]
pub struct Hosts {
    bridge: String,
    /// The bridge's address, in the root namespace (Nimbus and the test process use it).
    pub gateway: String,
    /// One namespace per host: (name, address).
    pub hosts: Vec<(String, String)>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Hosts {
    /// Creates `n` hosts on a new bridge, on a subnet of 10.201.0.0/16 chosen by this process's
    /// id. `Err` says why it cannot (not root, no `ip`, namespaces not allowed).
    pub fn create(n: usize) -> Result<Hosts, String> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let euid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1));
        if euid != Some("0") {
            return Err("network namespaces need root".into());
        }
        let id = std::process::id() % 250;
        let subnet = format!("10.201.{id}");
        let mut hosts = Hosts {
            bridge: format!("tpbr{id}"),
            gateway: format!("{subnet}.1"),
            hosts: Vec::new(),
        };
        ip(&["link", "add", &hosts.bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("{subnet}.1/24"),
            "dev",
            &hosts.bridge,
        ])?;
        ip(&["link", "set", &hosts.bridge, "up"])?;
        for i in 0..n {
            let ns = format!("tempest-{id}-{i}");
            let address = format!("{subnet}.{}", 10 + i);
            let (outside, inside) = (format!("tp{id}h{i}"), format!("tp{id}n{i}"));
            ip(&["netns", "add", &ns])?;
            hosts.hosts.push((ns.clone(), address.clone()));
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ])?;
            ip(&["link", "set", &inside, "netns", &ns])?;
            ip(&["link", "set", &outside, "master", &hosts.bridge])?;
            ip(&["link", "set", &outside, "up"])?;
            let in_ns = |args: &[&str]| {
                let mut all = vec!["netns", "exec", &ns, "ip"];
                all.extend_from_slice(args);
                ip(&all)
            };
            in_ns(&["addr", "add", &format!("{address}/24"), "dev", &inside])?;
            in_ns(&["link", "set", &inside, "up"])?;
            in_ns(&["link", "set", "lo", "up"])?;
        }
        Ok(hosts)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for (ns, _) in &self.hosts {
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}
