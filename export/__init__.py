"""Turns a Hugging Face Wav2Vec2ForCTC checkpoint into a servable model folder (ONNX fp32 + INT8)."""
