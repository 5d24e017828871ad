"""Hugging Face Qwen2 models in (``--model``: NeMo's importer) and adapters out (``nemo-resume export``: NeMo's
exporters), each run in a child process on CPU or GPU alike."""
