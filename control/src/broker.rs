//! The embedded broker for the zero-setup demo (`[mqtt] embedded = true`): rumqttd on
//! `host:port`, localhost only, MQTT 3.1.1, on its own threads. Production configs point at
//! a real broker instead.

use anyhow::{Context, Result};
use orion_config::Config;

pub fn start(config: &Config) -> Result<()> {
    let listen = format!("{}:{}", config.mqtt.host, config.mqtt.port);
    let text = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 64
max_outgoing_packet_count = 200
max_segment_size = 10485760
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "{listen}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 4194304
max_inflight_count = 100
dynamic_filters = true
"#
    );
    let settings: rumqttd::Config = toml::from_str(&text).context("embedded broker settings")?;
    // Bind now, so a taken port is an error here and not a silent thread failure.
    std::net::TcpListener::bind(&listen)
        .with_context(|| format!("embedded broker: cannot listen on {listen}"))?;
    std::thread::Builder::new()
        .name("broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(settings);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker stopped");
            }
        })
        .context("start the embedded broker")?;
    tracing::info!(%listen, "embedded MQTT broker started");
    Ok(())
}
