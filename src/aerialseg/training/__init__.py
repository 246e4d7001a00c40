"""Training: run config, data module, LightningModule and the train entry point."""
