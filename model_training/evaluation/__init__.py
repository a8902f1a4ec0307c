"""Evaluation: the evaluator (``evaluate``: its loop, over ``tasks`` registered by name:
classification accuracy, grounding IoU / Dice), the reasoning-answer consistency judge
(``judge``), general-VQA retention (``retention``, ``vqa_metrics``), the leaderboard
(``leaderboard``) and their plots (``plots``)."""
