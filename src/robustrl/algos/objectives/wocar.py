"""WocaR-PPO (Liang et al. 2022, "Efficient adversarial training without attacking: worst-case-aware
robust reinforcement learning", NeurIPS), as its official code (``umd-huang-lab/WocaR-RL``,
``WocaR-PPO``: ``worst_q_step``, ``worst_action_pgd``, ``robust_q_ppo_step``) implements it.
(The paper is not in this repository, so components are cited by name, not equation number.)

1. Worst-attack action value (the paper's worst-attack Bellman operator). A critic Q_w(s, a),
   owned by this objective with its own Adam and a soft-updated target copy Q_w', is fitted in
   ``prepare`` every iteration to

       Q_w(s_t, a_t) <- r_t + gamma Q_w'(s_{t+1}, a_w(s_{t+1})),
       a_w(s') = argmin_{a in [l(s'), u(s')]} Q_w'(s', a),

   where [l, u] is the IBP box of the policy mean over B_eps(s') (the paper's relaxed adversarial
   action set: every action an eps-perturbation of s' can make the policy take), searched by
   projected sign-gradient steps, as ``worst_action_pgd``.
2. Worst-case-aware policy optimisation. The clipped surrogate uses the advantage mixed with the
   worst-case value of the taken action, both normalised per minibatch (``surrogate_adv_q``):

       A_wocar = A_hat + w_t Q_hat_w(s, a),   w_t = q_weight * min(1, eps_t / eps_target).

3. State regularisation: SA-PPO's divergence max_{s' in B_eps(s)} D(pi(s), pi(s')) at an SGLD
   solution (or PGD / IBP with ``solver``), weighted by kappa (the code's ``robust_ppo_reg``).

   L_wocar = -mean g(r_theta(s), A_wocar) - c H(pi(.|s)) + kappa mean D

L_wocar is the whole policy loss of ``robust_q_ppo_step`` (PPO's surrogate is inside it, with the
modified advantage), so this objective sets ``guidance = False``; kappa is the regulariser weight,
as for sa-ppo. With eps = 0 both additions vanish (w_t = 0, D = 0) and L_wocar is PPO's policy loss
exactly; so does it with kappa = 0 and q_weight = 0 at any eps.

Approximations and simplifications (each documented where it is made):
- The batch has no next observations. Rows are flattened over (time, env), so the successor of
  row i is row j = i + num_envs; the batch's rewards and episode ends give the one-step target
  r_i + gamma Q(s_j, a_worst), and rows where an episode ended are left out (until session 6 the
  reward was recovered from GAE and those few rows bootstrapped into the next episode's first
  state). The last step of each env has no successor and is left out too. The Q targets are in
  the scaled-reward units of V, as in the reference.
- The worst action is searched once per iteration, against the target critic, from the centre of
  the IBP box (the reference: per minibatch, against the online critic, from the policy mean, 50
  steps); ``inner_steps`` steps of 2/``inner_steps`` of the box half-width.
- w_t ramps with the eps schedule (0 -> q_weight over the first 75%) instead of the reference's
  ``weight_schedule="linear"`` over all iterations: it is a function of eps alone, so it needs no
  iteration counter. The paper's state-importance weights on the regulariser are not used, as in
  the official PPO code.
- With ``ppo.compile`` the term is traced into PPO's compiled step (eps, the critic's values and
  its loss are batch columns; the regulariser's SGLD runs inside the graph as SA-PPO's); the
  critic's own fit stays eager, in ``prepare``.
- The critic, its target and its optimiser are saved in the PPO checkpoint (``objective/...``
  tensors), so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from robustrl.algos.objectives.common import clipped_surrogate
from robustrl.algos.objectives.sa_ppo import SAPPO
from robustrl.algos.ppo import Batch
from robustrl.policies.actor_critic import mlp
from robustrl.policies.ibp import interval_bounds
from robustrl.threat import Ball, pgd


def one_step_rewards(batch: Batch, num_envs: int, gamma: float, gae_lambda: float):
    """(rows, successors, r): every row i whose successor j = i + num_envs in the (time, env)
    flattened batch is the next state of the same episode, and the reward of step i. Batches from
    the rollout collector carry their rewards and episode ends: rows where an episode ended are
    left out (their successor starts another episode). A hand-built batch without them gets the
    reward recovered from GAE, r_i = R_i - gamma lambda A_j - gamma V_j (exact inside an episode)."""
    rows = torch.arange(max(len(batch) - num_envs, 0))
    if batch.rewards is not None and batch.dones is not None:
        rows = rows[batch.dones[rows] == 0]
        return rows, rows + num_envs, batch.rewards[rows]
    successors = rows + num_envs
    with torch.no_grad():
        rewards = (
            batch.returns[rows] - gamma * gae_lambda * batch.advantages[successors] - gamma * batch.values[successors]
        )
    return rows, successors, rewards


class WorstCaseQ(nn.Module):
    """Q_w(s, a): an MLP on the concatenated (normalised observation, action)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: tuple[int, ...], activation: str):
        super().__init__()
        self.net = mlp(obs_dim + action_dim, 1, hidden_sizes, activation, out_gain=1.0)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs, actions], dim=-1)).squeeze(-1)


class WorstCaseCritic:
    """Part 1 of the module docstring, for any robust objective (a RobustObjective subclass mixes
    it in before its base): the worst-attack critic Q_w, its target and optimiser, its fit on each
    batch (``fit_critic``), the worst-case weight w_t, and its checkpoint tensors. WocaR-PPO uses
    it beside SA-PPO's regulariser; ``bar-ppo-wocar`` beside BAR-PPO's L_bar."""

    q_knobs = ("q_weight", "q_lr", "q_epochs", "q_tau")
    continuous_actions_only = True  # the worst-attack critic Q_w(s, a) takes a continuous action

    def init_critic(self, config: Any) -> None:
        robust, ppo = config.robust, config.ppo
        self.q_weight = robust.q_weight
        self.target_eps = robust.target_eps(config.env_id)
        self.gamma, self.gae_lambda = ppo.gamma, ppo.gae_lambda
        self.num_envs = config.num_envs
        self.num_minibatches = ppo.num_minibatches
        self.hidden_sizes, self.activation, self.adam_eps = ppo.hidden_sizes, ppo.activation, ppo.adam_eps
        self.q_network: WorstCaseQ | None = None  # built on the first batch (needs the dimensions)
        self.target_network: WorstCaseQ | None = None
        self.q_optimizer: torch.optim.Optimizer | None = None
        self.last_q_loss = float("nan")
        self.compile = ppo.compile  # the critic's regression steps compiled too (_compiled_critic_step)
        self.skip_guards = ppo.skip_guards
        self._critic_step: Any = None

    def fit_and_value(self, batch: Batch, policy: Any, eps: float) -> torch.Tensor:
        """Fit Q_w on ``batch`` (building it on the first) and return Q_w'(s, a) of its rows."""
        if self.q_network is None:
            self.build_critic(policy)
        self.fit_critic(batch, policy, eps)
        assert self.target_network is not None
        with torch.no_grad():
            return self.target_network(batch.obs, batch.actions)

    # ---- the worst-attack critic --------------------------------------------------------------
    def build_critic(self, policy: Any) -> None:
        if not policy.continuous:
            raise ValueError(f"{type(self).__name__} needs a Gaussian policy (continuous actions): its critic Q_w(s, a) takes a continuous action")
        with torch.random.fork_rng(devices=[]):  # leave the global torch stream to the PPO run
            torch.manual_seed(self.seed)
            self.q_network = WorstCaseQ(policy.obs_dim, policy.action_dim, self.hidden_sizes, self.activation)
        self.target_network = copy.deepcopy(self.q_network).requires_grad_(False)
        self.q_optimizer = torch.optim.Adam(self.q_network.parameters(), lr=self.robust.q_lr, eps=self.adam_eps)
        self._critic_step = None  # bound to the old networks

    def state_tensors(self) -> dict[str, torch.Tensor]:
        if self.q_network is None:
            return {}
        assert self.target_network is not None and self.q_optimizer is not None
        tensors = {f"q/{k}": v for k, v in self.q_network.state_dict().items()}
        tensors |= {f"target/{k}": v for k, v in self.target_network.state_dict().items()}
        for index, parameter_state in self.q_optimizer.state_dict()["state"].items():
            tensors |= {f"q_optimizer/{index}/{k}": torch.as_tensor(v) for k, v in parameter_state.items()}
        return tensors

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], policy: Any) -> None:
        if not tensors:
            return  # saved before the first update: the critic is built on the first batch
        self.build_critic(policy)
        assert self.q_network is not None and self.target_network is not None and self.q_optimizer is not None

        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

        self.q_network.load_state_dict(part("q/"))
        self.target_network.load_state_dict(part("target/"))
        optimizer_state: dict[str, Any] = {"state": {}, "param_groups": self.q_optimizer.state_dict()["param_groups"]}
        for key, value in part("q_optimizer/").items():
            index, name = key.split("/")
            optimizer_state["state"].setdefault(int(index), {})[name] = value
        self.q_optimizer.load_state_dict(optimizer_state)

    def worst_actions(self, policy: Any, obs: torch.Tensor, eps: float) -> torch.Tensor:
        """a_w(s) = argmin over the IBP box of the policy mean over B_eps(s) of Q_w'(s, a)."""
        with torch.no_grad():
            if eps == 0:
                return policy.actor(obs)
            lower, upper = interval_bounds(policy.actor, *self.ball(eps).bounds(obs))
        center, radius = (upper + lower) / 2, (upper - lower) / 2
        target = self.target_network

        def worst_case_value(z: torch.Tensor) -> torch.Tensor:  # a = center + radius * z, |z| <= 1
            return target(obs, center + radius * z)

        steps = self.robust.inner_steps
        z = pgd(
            worst_case_value, torch.zeros_like(center), Ball(1.0, "inf"), steps=steps, step_size=2.0 / steps,
            random_start=False, maximize=False, generator=self.generator,
        )
        return (center + radius * z).detach()

    def fit_critic(self, batch: Batch, policy: Any, eps: float) -> None:
        """``q_epochs`` epochs of minibatch regression on the worst-attack Bellman target, with a
        soft target update after every step (``worst_q_step``)."""
        rows, successors, rewards = one_step_rewards(batch, self.num_envs, self.gamma, self.gae_lambda)
        if len(rows) == 0:
            return
        next_obs = batch.obs[successors]
        next_actions = self.worst_actions(policy, next_obs, eps)
        obs, actions = batch.obs[rows], batch.actions[rows]
        assert self.q_network is not None and self.target_network is not None and self.q_optimizer is not None
        tau = self.robust.q_tau
        losses = []
        step = self._compiled_critic_step() if self.compile else None
        from robustrl.algos.ppo import GuardSkipper

        guards = GuardSkipper(self.skip_guards)  # repeated calls of one minibatch size skip dynamo's guards
        for _ in range(self.robust.q_epochs):
            permutation = torch.randperm(len(rows), generator=self.generator)
            for index in permutation.tensor_split(self.num_minibatches):
                if step is not None:
                    losses.append(guards.call(
                        (len(index),), step, obs[index], actions[index], next_obs[index], next_actions[index], rewards[index]
                    ))  # fmt: skip
                    continue
                with torch.no_grad():
                    target = rewards[index] + self.gamma * self.target_network(next_obs[index], next_actions[index])
                loss = nn.functional.mse_loss(self.q_network(obs[index], actions[index]), target)
                self.q_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.q_optimizer.step()
                with torch.no_grad():
                    for target_parameter, parameter in zip(self.target_network.parameters(), self.q_network.parameters()):
                        target_parameter.lerp_(parameter, tau)
                losses.append(loss.detach())
        self.last_q_loss = float(torch.stack(losses).mean())

    def _compiled_critic_step(self) -> Any:
        """One regression step of :meth:`fit_critic` (target, MSE, gradient, Adam, soft target
        update) as one torch.compile graph (``ppo.compile``): the same step as the eager loop up
        to float rounding (PyTorch's functional Adam on the optimiser's own state, so checkpoints
        and resumes are unchanged), without ~40 small eager ops per step, 320 steps per
        iteration. Built once; its arguments are the minibatch's tensors."""
        if self._critic_step is not None:
            return self._critic_step
        from torch.optim.adam import adam as functional_adam

        q, target_network, optimizer = self.q_network, self.target_network, self.q_optimizer
        assert q is not None and target_network is not None and optimizer is not None
        names = [name for name, _ in q.named_parameters()]
        parameters = list(q.parameters())
        targets = list(target_network.parameters())
        for p in parameters:  # the state Adam's first eager step would create
            if not optimizer.state[p]:
                optimizer.state[p] = {"step": torch.tensor(0.0), "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
        group = optimizer.param_groups[0]
        (beta1, beta2), lr, adam_eps = group["betas"], group["lr"], group["eps"]
        gamma, tau = self.gamma, self.robust.q_tau

        def step(obs, actions, next_obs, next_actions, rewards, exp_avgs, exp_avg_sqs, steps):
            with torch.no_grad():
                target = rewards + gamma * target_network(next_obs, next_actions)

            def loss_of(values: dict[str, torch.Tensor]) -> torch.Tensor:
                return nn.functional.mse_loss(torch.func.functional_call(q, values, (obs, actions)), target)

            gradients, loss = torch.func.grad_and_value(loss_of)({n: p.detach() for n, p in zip(names, parameters)})
            with torch.no_grad():
                functional_adam(
                    parameters, [gradients[n] for n in names], exp_avgs, exp_avg_sqs, [], steps, foreach=False,
                    capturable=False, differentiable=False, fused=None, grad_scale=None, found_inf=None,
                    has_complex=False, amsgrad=False, beta1=beta1, beta2=beta2, lr=lr, weight_decay=0.0,
                    eps=adam_eps, maximize=False,
                )  # fmt: skip
                for target_parameter, parameter in zip(targets, parameters):
                    target_parameter.lerp_(parameter, tau)
            return loss.detach()

        from robustrl.algos.ppo import compile_own

        compiled = compile_own(step, dynamic=False)  # a cache per critic (see compile_own)
        states = [optimizer.state[p] for p in parameters]

        def call(obs, actions, next_obs, next_actions, rewards):
            return compiled(obs, actions, next_obs, next_actions, rewards, [s["exp_avg"] for s in states],
                            [s["exp_avg_sq"] for s in states], [s["step"] for s in states])  # fmt: skip

        self._critic_step = call
        return call

    def worst_case_weight(self, eps: torch.Tensor) -> torch.Tensor:
        """w_t = q_weight * min(1, eps_t / eps_target), per row of the eps column."""
        return self.q_weight * (eps / self.target_eps).clamp(max=1.0)


class WocaRPPO(WorstCaseCritic, SAPPO):
    """WocaR-PPO; see the module docstring."""

    default_inner_solve = "minibatch"  # the regulariser's inner max, per minibatch as the reference

    knobs = (*SAPPO.knobs, *WorstCaseCritic.q_knobs)

    def __init__(self, config: Any):
        super().__init__(config)
        # The critic is fitted in prepare (outside the step); the term reads eps, the critic's
        # values and its loss from batch columns (prepare), so with the regulariser solved per
        # minibatch (SA-PPO's SGLD inside the compiled step) ppo.compile traces it like SA-PPO's.
        self.init_critic(config)
        self.guidance = False  # L_wocar already contains PPO's (worst-case-aware) surrogate

    # ---- the Objective protocol ---------------------------------------------------------------
    def prepare(self, batch: Batch, policy: Any, eps: float) -> None:
        super().prepare(batch, policy, eps)  # reseed; the regulariser's inner solve if "iteration"
        batch.extras["worst_q"] = self.fit_and_value(batch, policy, eps)
        # columns sliced with every minibatch, so the term is a pure function of its inputs
        self.store_eps(batch, eps)  # absent at eps 0: no worst-case weight, no regulariser
        batch.extras["worst_q_loss"] = torch.full((len(batch),), self.last_q_loss)

    def loss(self, minibatch: Batch, policy: Any, eps: float) -> tuple[torch.Tensor, dict[str, float]]:
        worst_q = minibatch.extras["worst_q"]
        # eps of this iteration, one per row (prepare; absent at eps 0); a caller without prepare
        # passes it (inside a compiled step the argument is nan and "nan > 0" is false)
        rows = minibatch.extras.get("eps")
        if rows is None and eps > 0:
            rows = torch.tensor(float(eps))
        advantages = minibatch.advantages
        weight = torch.zeros(())
        if rows is not None and self.target_eps > 0 and self.q_weight > 0:
            weight = self.worst_case_weight(rows)
            normalised_q = (worst_q - worst_q.mean()) / (worst_q.std() + 1e-8)
            advantages = advantages + weight * normalised_q
        log_prob, entropy = policy.log_prob_and_entropy(minibatch.obs, minibatch.actions)
        ratio = (log_prob - minibatch.log_probs).exp()
        surrogate = clipped_surrogate(ratio, advantages, self.clip_eps)
        term = -surrogate.mean() - self.entropy_coef * entropy
        divergence = torch.zeros(())
        if rows is not None and self.kappa > 0:
            divergence, _ = super().loss(minibatch, policy, eps)
            term = term + self.kappa * divergence
        q_loss = minibatch.extras.get("worst_q_loss")
        metrics = {
            "worst_q": worst_q.mean(),
            "worst_q_loss": q_loss.mean() if q_loss is not None else torch.tensor(self.last_q_loss),
            "worst_q_weight": weight.mean(),
            "state_divergence": divergence.detach(),
        }
        return term, metrics
