"""The hub core. Knows event types, routes and delivery; knows no particular partner."""
