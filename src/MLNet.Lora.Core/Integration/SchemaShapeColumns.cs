using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Lora.Integration;

/// <summary>
/// Makes <see cref="SchemaShape.Column"/> values for <see cref="IEstimator{TTransformer}.GetOutputSchema"/>.
/// ML.NET keeps the constructor internal, so an extension reaches it by reflection.
/// </summary>
internal static class SchemaShapeColumns
{
    private static readonly ConstructorInfo Constructor =
        typeof(SchemaShape.Column).GetConstructor(BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public, null,
            [typeof(string), typeof(SchemaShape.Column.VectorKind), typeof(DataViewType), typeof(bool), typeof(SchemaShape)], null)
        ?? throw new NotSupportedException("SchemaShape.Column's constructor was not found; this MLNet.Lora build supports Microsoft.ML 5.x.");

    public static SchemaShape.Column Create(string name, SchemaShape.Column.VectorKind kind, DataViewType itemType, bool isKey, SchemaShape? annotations = null) =>
        (SchemaShape.Column)Constructor.Invoke([name, kind, itemType, isKey, annotations ?? new SchemaShape([])]);
}
