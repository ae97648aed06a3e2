"""QR check-in codes: signed tokens, QR images and printable posters."""
