"""Airflow provider metadata for the SenseVoice pipeline (registered through the `apache_airflow_provider` entry
point): the `sensevoice_triton` connection type and its hook, and the sensor (with its trigger) that waits for a
day's raw partition. Imported only by Airflow, never by the library."""


def get_provider_info() -> dict:
    return {
        "package-name": "sensevoice-pipeline",
        "name": "SenseVoice pipeline",
        "description": "Triton connection, and the raw-partition sensor, of the SenseVoice speech analytics DAGs.",
        "integrations": [{"integration-name": "SenseVoice pipeline", "tags": ["software"]}],
        "connection-types": [
            {
                "connection-type": "sensevoice_triton",
                "hook-class-name": "sensevoice_pipeline.provider.hooks.SenseVoiceTritonHook",
            }
        ],
        "sensors": [
            {
                "integration-name": "SenseVoice pipeline",
                "python-modules": ["sensevoice_pipeline.provider.sensors"],
            }
        ],
        "triggers": [
            {
                "integration-name": "SenseVoice pipeline",
                "python-modules": ["sensevoice_pipeline.provider.triggers"],
            }
        ],
        "versions": ["0.1.0"],
    }
