"""Runs PySceneDetect (the peer) on one file and prints its cuts as JSON.

Usage: python pyscenedetect_cuts.py FILE adaptive|content

Defaults as a user gets them (PySceneDetect picks its own downscale); the
output lists the first frame of every scene after the first, which is what
monteur's `cut` transitions mean.
"""
import json
import sys

from scenedetect import SceneManager, open_video
from scenedetect.detectors import AdaptiveDetector, ContentDetector


def main() -> None:
    path, which = sys.argv[1], sys.argv[2]
    detector = {"adaptive": AdaptiveDetector, "content": ContentDetector}[which]()
    video = open_video(path)
    manager = SceneManager()
    manager.add_detector(detector)
    manager.detect_scenes(video)
    scenes = manager.get_scene_list()
    cuts = [start.frame_num for start, _ in scenes[1:]]
    print(json.dumps({"cuts": cuts, "frames": video.frame_number}))


if __name__ == "__main__":
    main()
