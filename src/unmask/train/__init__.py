"""Training: optimizer and schedules (optim.py), shared by pretraining and fine-tuning."""
