"""Evaluation: CT-RATE-VQA accuracy (``evaluate``), the reasoning-answer consistency judge
(``judge``), general-VQA retention (``retention``, ``vqa_metrics``), the leaderboard
(``leaderboard``) and their plots (``plots``)."""
