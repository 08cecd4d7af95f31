using System.Text.Json;
using TorchSharp;
using Vlsm.IO;
using Vlsm.Models;
using Vlsm.Models.San;
using Vlsm.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Vlsm.Tests;

/// <summary>
/// One training step of SAN against san-tiny's train.safetensors (vlsm-adapter's BaseModule.step
/// on the reference SAN): the loss, its Dice and BCE terms, and the gradient of every parameter,
/// with exactly the reference's set of parameters receiving one. Also the standalone loss case,
/// and the original-SAN gradient flow (<c>san_gradients: original</c>) against finite differences.
/// </summary>
[Collection(GlobalRngCollection.Name)]
public sealed class SanTrainingStepTests
{
    private const double Tolerance = 1e-4;
    private static string Tiny => SanParityTests.TinyFolder;

    private readonly ITestOutputHelper output;

    public SanTrainingStepTests(ITestOutputHelper output) => this.output = output;

    private static SanTraining Open(string gradients) => (SanTraining)SanFamily.Instance.OpenTrainable(
        new ModelRequest { Directory = Tiny, Options = new Dictionary<string, string> { [SanTrainables.OptionKey] = gradients } },
        new TrainingSetup { Spec = FineTuneSpec.Create(FineTuneMode.Full), CacheDirectory = Path.Combine(Path.GetTempPath(), "vlsm-san-unused"), FeatureCache = false });

    /// <summary>The fixture's inputs as a training batch: its pixels and its prompts (checked to tokenize to its ids).</summary>
    private static ModelBatch Batch(SanTraining model, SafetensorsFile reference)
    {
        var prompts = JsonSerializer.Deserialize<string[]>(reference.Metadata["prompts"])!;
        using var ids = SanLoader.InputIds(SanLoader.Tokenizer(Tiny, model.Model.Config), model.Model.Config, prompts);
        using var expected = reference.Load("input_ids", ScalarType.Int64);
        Assert.True(ids.equal(expected).all().item<bool>(), "the prompts do not tokenize to the fixture's input_ids");
        return new ModelBatch(reference.Load("pixel_values", ScalarType.Float32), prompts, prompts.Select((_, i) => $"sample{i}").ToList());
    }

    [Fact]
    public void OneTrainingStepGivesTheReferenceLossAndEveryGradient()
    {
        using var scope = NewDisposeScope();
        using var model = Open("reference");
        using var reference = SafetensorsFile.Open(Path.Combine(Tiny, "reference.safetensors"));
        using var train = SafetensorsFile.Open(Path.Combine(Tiny, "train.safetensors"));
        model.SetTraining(true);
        var logits = model.Forward(Batch(model, reference));
        var target = train.Load("target", ScalarType.Float32).squeeze(1);
        var loss = SegmentationLosses.Create("reference").Compute(logits, target);
        double expectedLoss = train.Load("loss", ScalarType.Float32).item<float>();
        output.WriteLine($"loss {loss.item<float>():0.000000000} vs {expectedLoss:0.000000000}");
        Assert.True(Math.Abs(loss.item<float>() - expectedLoss) <= Tolerance);
        loss.backward();

        var withGrad = model.Model.named_parameters().Where(p => p.parameter.grad is not null).ToDictionary(p => p.name, p => p.parameter.grad!);
        var expectedNames = train.Names.Where(n => n.StartsWith("grad.", StringComparison.Ordinal)).Select(n => n["grad.".Length..]).ToList();
        Assert.Equal(125, expectedNames.Count);
        Assert.Equal(expectedNames.Order(StringComparer.Ordinal), withGrad.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(expectedNames.Order(StringComparer.Ordinal), model.TrainableNamed().Select(p => p.Name).Order(StringComparer.Ordinal));
        double worst = 0;
        foreach (var name in expectedNames)
        {
            var expected = train.Load("grad." + name, ScalarType.Float32);
            Assert.Equal(expected.shape, withGrad[name].shape);
            double diff = withGrad[name].sub(expected).abs().max().item<float>();
            worst = Math.Max(worst, diff);
            Assert.True(diff <= Tolerance, $"grad.{name} differs by {diff:g3}");
        }
        output.WriteLine($"{expectedNames.Count} gradients, worst max |diff| {worst:g3}");

        // What the reference lists as requires_grad but gradient-free gets none here either.
        var noGrad = JsonSerializer.Deserialize<string[]>(train.Metadata["requires_grad_but_no_grad"])!;
        foreach (var name in noGrad) Assert.False(withGrad.ContainsKey(name), name);
        foreach (var name in noGrad) Assert.True(SanTrainables.RequiresGrad(model.Model.Config, name), name);
    }

    [Fact]
    public void TheLossTermsMatchMonaiAndThePaperEraLoss()
    {
        using var scope = NewDisposeScope();
        foreach (var file in new[] { "loss.safetensors", "train.safetensors" })
        {
            using var f = SafetensorsFile.Open(Path.Combine(Tiny, file));
            Tensor logits;
            if (file == "loss.safetensors")
            {
                logits = f.Load("logits", ScalarType.Float32).squeeze(1);
            }
            else
            {
                using var model = SanLoader.Load(Tiny);
                using var reference = SafetensorsFile.Open(Path.Combine(Tiny, "reference.safetensors"));
                using var _ = no_grad();
                logits = model.Forward(reference.Load("pixel_values", ScalarType.Float32), reference.Load("input_ids", ScalarType.Int64));
            }
            var target = f.Load("target", ScalarType.Float32).squeeze(1);
            double Stored(string name) => f.Load(name, ScalarType.Float32).item<float>();
            double dice = new DiceBceLoss(BceInput.Reference, 1, 0).Compute(logits, target).item<float>();
            double bce = new DiceBceLoss(BceInput.Reference, 0, 1).Compute(logits, target).item<float>();
            double full = SegmentationLosses.Create("reference").Compute(logits, target).item<float>();
            double paper = SegmentationLosses.Create(MonaiDiceOnlyLoss.LossName).Compute(logits, target).item<float>();
            output.WriteLine($"{file}: dice {dice} / {Stored("loss_dice")}, bce {bce} / {Stored("loss_bce")}, loss {full} / {Stored("loss")}, monai 1.1.0 {paper} / {Stored("loss_monai_1_1_0")}");
            Assert.True(Math.Abs(dice - Stored("loss_dice")) <= Tolerance);
            Assert.True(Math.Abs(bce - Stored("loss_bce")) <= Tolerance);
            Assert.True(Math.Abs(full - Stored("loss")) <= Tolerance);
            Assert.True(Math.Abs(paper - Stored("loss_monai_1_1_0")) <= Tolerance);
        }
    }

    /// <summary>The reference loss (1.5 x Dice + BCE-with-logits on sigmoid(logits)) kept in float64, for finite differences.</summary>
    private static Tensor Float64Loss(Tensor logits, Tensor target)
    {
        var p = logits.sigmoid();
        var dims = new long[] { 1, 2 };
        var dice = p.mul(target).sum(dims).mul(2).add(1e-5).div(p.sum(dims).add(target.sum(dims)).add(1e-5)).neg().add(1).mean();
        return dice.mul(1.5).add(nn.functional.binary_cross_entropy_with_logits(p, target));
    }

    [Fact]
    public void TheOriginalFlowTrainsTheAttentionBiasWithTheRightGradient()
    {
        using var scope = NewDisposeScope();
        using var reference = SafetensorsFile.Open(Path.Combine(Tiny, "reference.safetensors"));
        using var train = SafetensorsFile.Open(Path.Combine(Tiny, "train.safetensors"));
        using (var training = Open("original"))
        {
            var trained = training.TrainableNamed().Select(p => p.Name).ToHashSet();
            Assert.Contains("side_adapter_network.mask_decoder.bias_scaling.bias", trained);
            Assert.Contains("side_adapter_network.mask_decoder.attn_mlp.layers.2.weight", trained);
            Assert.Contains("clip_model.visual.positional_embedding", trained);
            Assert.DoesNotContain("clip_model.token_embedding.weight", trained);
            Assert.DoesNotContain("side_adapter_network.fusion_layers.layer_9.input_proj.1.weight", trained);
        }

        // In float64, autograd's derivative of the loss along its gradient equals a central difference.
        using var model = SanLoader.Load(Tiny);
        model.to(ScalarType.Float64);
        model.OriginalGradients = true;
        foreach (var (name, p) in model.named_parameters()) p.requires_grad = SanTrainables.ReceivesGradient(model.Config, SanGradients.Original, name);
        var pixels = reference.Load("pixel_values", ScalarType.Float64);
        var ids = reference.Load("input_ids", ScalarType.Int64);
        var target = train.Load("target", ScalarType.Float64).squeeze(1);
        double Loss()
        {
            using var _ = no_grad();
            using var l = Float64Loss(model.Forward(pixels, ids), target);
            return l.item<double>();
        }
        var forward = Float64Loss(model.Forward(pixels, ids), target);
        forward.backward();
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var name in new[] { "side_adapter_network.mask_decoder.bias_scaling.bias", "clip_model.visual.positional_embedding" })
        {
            var p = parameters[name];
            Assert.NotNull(p.grad);
            // Along the gradient's direction, a central difference in float64.
            var direction = p.grad!.div(p.grad!.norm());
            double analytic = p.grad!.mul(direction).sum().item<double>();
            const double h = 1e-5;
            using (no_grad()) p.add_(direction.mul(h));
            double plus = Loss();
            using (no_grad()) p.sub_(direction.mul(2 * h));
            double minus = Loss();
            using (no_grad()) p.add_(direction.mul(h));
            double numeric = (plus - minus) / (2 * h);
            output.WriteLine($"{name}: autograd {analytic:g8}, central difference {numeric:g8}");
            Assert.True(analytic > 0);
            Assert.True(Math.Abs(analytic - numeric) <= 1e-6 * Math.Max(1, Math.Abs(analytic)), $"{name}: {analytic} vs {numeric}");
        }
    }
}
