"""Airflow provider metadata for the SenseVoice pipeline (registered through the `apache_airflow_provider` entry
point): the `sensevoice_triton` connection type and its hook. Imported only by Airflow, never by the library."""


def get_provider_info() -> dict:
    return {
        "package-name": "sensevoice-pipeline",
        "name": "SenseVoice pipeline",
        "description": "Triton connection for the SenseVoice speech analytics DAGs.",
        "connection-types": [
            {
                "connection-type": "sensevoice_triton",
                "hook-class-name": "sensevoice_pipeline.provider.hooks.SenseVoiceTritonHook",
            }
        ],
        "versions": ["0.1.0"],
    }
