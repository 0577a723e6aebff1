//! The topics of one instance (docs/operations.md#3-the-mqtt-broker).

use orion_config::Config;

pub struct Topics {
    pub control: String,
    pub health: String,
    pub status: String,
    pub availability: String,
    pub detections: String,
}

impl Topics {
    pub fn new(config: &Config) -> Self {
        let (p, id) = (&config.mqtt.prefix, &config.instance_id);
        Self {
            control: format!("{p}/control/{id}"),
            health: format!("{p}/health/{id}"),
            status: format!("{p}/status/{id}"),
            availability: format!("{p}/availability/{id}"),
            detections: format!("{p}/inferences/{id}/person_detection"),
        }
    }
}
