"""The bench's Django app: its workflows and the hooks its worker processes need."""
