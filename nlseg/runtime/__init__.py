"""Running trained networks: backends behind one interface, frame sources, the video pipeline."""
