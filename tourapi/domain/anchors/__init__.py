"""AR anchors: provider-neutral geo-anchors (OGC GeoPose) for night AR scenes."""
