"""Fine-tuning Wav2Vec2 CTC models for Turkish (transformers, datasets, jiwer, TensorBoard)."""
