"""A tiny regression model trained with accel."""
