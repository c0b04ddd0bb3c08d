"""`vla bench rl`: how fast SAC learns on this machine, at the tabletop contract's shapes.

Figures: SAC updates per second (twin critics, actor and temperature, one RLPD batch of half demonstrations, half
online transitions, DrQ shifts) at two batch sizes and with the image pooled by 2 before the CNN; the actor's
per-tick latency (one observation, as the policy node would serve it); the success classifier's per-frame latency.
Synthetic frames: the cost does not depend on what the images show. The on-graph loop's success-vs-minutes figures
of issue 19 need the learner loop, which is not built yet (docs/rl.md).
"""
from __future__ import annotations

import time

import numpy as np


def _transitions(n: int, rng: np.random.Generator, h: int, w: int, reward: float) -> dict:
    img = lambda: {"top": rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)}  # noqa: E731
    lang = rng.standard_normal((n, 384)).astype(np.float32)
    return {"images": img(), "next_images": img(), "state": rng.standard_normal((n, 4)).astype(np.float32),
            "next_state": rng.standard_normal((n, 4)).astype(np.float32),
            "language": lang / np.linalg.norm(lang, axis=1, keepdims=True),
            "action": rng.uniform(-0.25, 0.25, (n, 2)).astype(np.float32), "reward": np.full(n, reward, np.float32),
            "done": rng.random(n) < 0.02, "intervention": np.zeros(n, bool)}


def _updates_per_s(net, batch_size: int, seconds: float, rng: np.random.Generator) -> tuple[float, dict]:
    from vla_trainer.rl.replay import ReplayBuffer, RLPDSampler, TransitionSpec
    from vla_trainer.rl.sac import SACAgent, SACConfig
    spec = TransitionSpec.from_config(net)
    demos, online = ReplayBuffer(spec, 512), ReplayBuffer(spec, 512)
    demos.add(_transitions(512, rng, *net.image_size, 1.0))
    online.add(_transitions(512, rng, *net.image_size, 0.0))
    sampler = RLPDSampler(demos, online, 0.5)
    agent = SACAgent(net, SACConfig(batch_size=batch_size))
    agent.update(sampler.sample(batch_size, rng))  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 2:
        metrics = agent.update(sampler.sample(batch_size, rng))
        n += 1
    return n / (time.perf_counter() - t0), metrics


def bench_rl(args, say) -> dict:
    import torch
    from vla_trainer.rl.networks import SACNetConfig
    from vla_trainer.rl.reward import SuccessClassifier, SuccessClassifierConfig
    seconds = 2.0 if args.quick else 20.0
    rng = np.random.default_rng(0)
    result = {"bench": "rl", "torch_threads": torch.get_num_threads(), "device": "cpu"}
    say(f"SAC on the CPU ({torch.get_num_threads()} torch threads), tabletop shapes: one 96x96 camera, state 4, "
        "instruction 384, action 2; hidden 256, CNN width 32")
    base = dict(image_size=(96, 96), state_dim=4, language_dim=384, action_dim=2, action_low=(-0.25, -0.25),
                action_high=(0.25, 0.25))
    sizes = ((2, 64), (1, 64)) if args.quick else ((2, 64), (1, 64), (2, 256), (1, 256))
    for downsample, batch in sizes:
        net = SACNetConfig(**base, image_downsample=downsample)
        rate, metrics = _updates_per_s(net, batch, seconds, rng)
        key = f"sac_updates_per_s_batch{batch}" + (f"_pool{downsample}" if downsample > 1 else "")
        result[key] = round(rate, 2)
        result[key.replace("updates", "samples")] = round(rate * batch, 1)
        finite = all(np.isfinite(v) for v in metrics.values())
        say(f"batch {batch}{f', image pooled by {downsample}' if downsample > 1 else ''}: {rate:.2f} updates/s "
            f"({rate * batch:,.0f} transitions/s){'' if finite else ' (non-finite metrics!)'}")
    from vla_trainer.rl.sac import SACAgent
    agent = SACAgent(SACNetConfig(**base))
    one = _transitions(1, rng, 96, 96, 0.0)
    for _ in range(5):
        agent.act(one["images"], one["state"], one["language"])
    times = []
    for _ in range(50 if args.quick else 300):
        t0 = time.perf_counter()
        agent.act(one["images"], one["state"], one["language"])
        times.append(time.perf_counter() - t0)
    result["actor_act_ms_p50"] = round(1e3 * float(np.median(times)), 3)
    result["actor_act_ms_p99"] = round(1e3 * float(np.percentile(times, 99)), 3)
    say(f"stochastic actor, one observation (torch): p50 {result['actor_act_ms_p50']:.2f} ms, "
        f"p99 {result['actor_act_ms_p99']:.2f} ms")
    clf = SuccessClassifier(SuccessClassifierConfig(image_size=(96, 96), state_dim=4, language_dim=384)).eval()
    x = {"top": torch.rand(1, 3, 96, 96)}
    s, lang = torch.zeros(1, 4), torch.from_numpy(one["language"])
    times = []
    with torch.no_grad():
        for i in range(55 if args.quick else 305):
            t0 = time.perf_counter()
            clf.probability(x, s, lang)
            if i >= 5:
                times.append(time.perf_counter() - t0)
    result["reward_model_ms_p50"] = round(1e3 * float(np.median(times)), 3)
    say(f"success classifier, one frame (torch): p50 {result['reward_model_ms_p50']:.2f} ms")
    return result
